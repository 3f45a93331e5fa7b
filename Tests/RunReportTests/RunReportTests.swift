import XCTest
import Autograd
import RunReport
import TensorCore

final class RunReportTests: XCTestCase {
    /// The table subset of Markdown the results table uses, and nothing else as markup.
    func testMarkdownTableBecomesHTML() {
        let md = """
        ## Rows
        | model | FD |
        |---|---:|
        | `teacher` <b> | 0.5 |

        a **bold** note & <script>x</script>
        """
        XCTAssertEqual(markdownToHTML(md), """
        <h3>Rows</h3>
        <table>
        <thead><tr><th>model</th><th class="num">FD</th></tr></thead>
        <tbody>
        <tr><td><code>teacher</code> &lt;b&gt;</td><td class="num">0.5</td></tr>
        </tbody>
        </table>
        <p>a <strong>bold</strong> note &amp; &lt;script&gt;x&lt;/script&gt;</p>
        """)
    }

    /// Stages in order of first appearance; a resumed stage's repeated step replaces the earlier
    /// line; lines without a loss (e.g. evaluation records) are left out.
    func testLossSeriesGroupsByStageAndKeepsTheLastLineOfAStep() {
        let rows: [[String: Any]] = [
            ["step": 100, "stage": "teacher", "loss": 0.9], ["step": 200, "stage": "teacher", "loss": 0.7],
            ["step": 200, "stage": "teacher", "loss": 0.6], ["step": 100, "stage": "reflow", "loss": 0.2],
            ["stage": "eval", "fd": 1.0], ["step": 300, "stage": "teacher", "loss": 0.5],
        ]
        let s = lossSeries(rows)
        XCTAssertEqual(s.map(\.stage), ["teacher", "reflow"])
        XCTAssertEqual(s[0].points.map(\.x), [100, 200, 300])
        XCTAssertEqual(s[0].points.map(\.y), [0.9, 0.6, 0.5])
        XCTAssertEqual(s[1].points.map(\.y), [0.2])
    }

    /// A straight path deviates nowhere; a path that moves only in its first half has velocity
    /// 2(x1 - x0) there and 0 after, so (x1 - x0)^2 = 1 everywhere for a unit displacement.
    func testStraightnessProfileOnKnownPaths() {
        func point(_ t: Float, _ v: [Float]) -> (t: Float, x: Tensor) { (t, Tensor(v, shape: [1, 2])) }
        let straight = [point(0, [0, 0]), point(0.5, [0.5, 1]), point(1, [1, 2])]
        XCTAssertEqual(straightnessProfile(straight).map(\.y), [0, 0])
        let bent = [point(0, [0, 0]), point(0.5, [1, 0]), point(1, [1, 0])]
        let p = straightnessProfile(bent)
        XCTAssertEqual(p.map(\.x), [0, 0.5])
        // Step 1: v = (2, 0) against (1, 0): (1^2 + 0) / 2 dims = 0.5; step 2: v = 0: 0.5 again.
        XCTAssertEqual(p.map(\.y), [0.5, 0.5])
    }
}
