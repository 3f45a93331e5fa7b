import XCTest
import Reporting

final class CurvePlotTests: XCTestCase {
    func testLinePlotSVG() {
        let svg = linePlotSVG(title: "FD <vs> accuracy", xLabel: "accuracy (%)", yLabel: "FD", series: [
            PlotSeries(name: "teacher", points: [(90, 0.4), (94, 0.45), (97, 0.75)], labels: ["w=1", "w=1.5", "w=2"]),
            PlotSeries(name: "student & co", points: [(97.4, 0.58)]),
        ])
        XCTAssertTrue(svg.hasPrefix("<svg xmlns=\"http://www.w3.org/2000/svg\""))
        XCTAssertTrue(svg.contains("FD &lt;vs&gt; accuracy"), "title escaped")
        XCTAssertTrue(svg.contains(">student &amp; co</text>"), "legend escaped")
        XCTAssertEqual(svg.components(separatedBy: "<polyline").count - 1, 1, "a line for the curve only")
        XCTAssertEqual(svg.components(separatedBy: "<circle").count - 1, 4 + 2, "a marker per point and per legend entry")
        // Every coordinate lies inside the canvas.
        let numbers = svg.components(separatedBy: CharacterSet(charactersIn: "\"")).compactMap(Double.init)
        XCTAssertTrue(numbers.allSatisfy { $0 >= -1 && $0 <= 720 }, "\(numbers.filter { $0 < -1 || $0 > 720 })")
        XCTAssertTrue(svg.contains(">w=1.5</text>"), "point labels")
        // Ticks are round numbers.
        XCTAssertTrue(svg.contains(">0.5</text>") || svg.contains(">0.6</text>"), svg)
    }
}
