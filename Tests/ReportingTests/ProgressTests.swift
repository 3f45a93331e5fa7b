import XCTest
import Reporting

final class ProgressTests: XCTestCase {
    func testFormatDuration() {
        XCTAssertEqual(Progress.formatDuration(0), "0s")
        XCTAssertEqual(Progress.formatDuration(12.4), "12s")
        XCTAssertEqual(Progress.formatDuration(59.6), "1m00s")
        XCTAssertEqual(Progress.formatDuration(83), "1m23s")
        XCTAssertEqual(Progress.formatDuration(65), "1m05s")
        XCTAssertEqual(Progress.formatDuration(3599), "59m59s")
        XCTAssertEqual(Progress.formatDuration(3600), "1h00m")
        XCTAssertEqual(Progress.formatDuration(2 * 3600 + 3 * 60 + 31), "2h04m")
        XCTAssertEqual(Progress.formatDuration(.nan), "?")
        XCTAssertEqual(Progress.formatDuration(.infinity), "?")
        XCTAssertEqual(Progress.formatDuration(-1), "?")
    }

    func testFormatRateAndValues() {
        XCTAssertEqual(Progress.formatRate(12.34), "12.3 it/s")
        XCTAssertEqual(Progress.formatRate(0.4), "2.5 s/it")
        XCTAssertEqual(Progress.formatRate(0), "-- it/s")
        XCTAssertEqual(Progress.formatValue(0.12345), "0.1235")
        XCTAssertEqual(Progress.formatValue(3e-5), "3.000e-05")
        XCTAssertEqual(Progress.formatValue(0), "0")
        XCTAssertEqual(Progress.formatValue(.nan), "nan")
    }

    func testLine() {
        XCTAssertEqual(Progress.line(label: "teacher", step: 120, total: 2000, values: [("loss", 0.1234)],
                                     rate: 12.3, tail: "ETA " + Progress.formatDuration(83)),
                       "teacher   120/2000  loss 0.1234  12.3 it/s  ETA 1m23s")
    }

    func testPlainModePrintsEveryNSteps() {
        var out: [String] = []
        let p = Progress(total: 10, label: "run", interactive: false, plainInterval: 1e9, plainEverySteps: 5) { out.append($0) }
        for s in 1...10 { p.update(step: s, values: [("loss", 1)]) }
        p.finish()
        p.finish() // once only
        XCTAssertEqual(out.count, 3)
        XCTAssertTrue(out[0].hasPrefix("run   5/10  loss 1.0000  "), out[0])
        XCTAssertTrue(out[1].hasPrefix("run  10/10  loss 1.0000  "), out[1])
        XCTAssertTrue(out[2].hasPrefix("run  10/10  loss 1.0000  ") && out[2].contains("done in"), out[2])
        XCTAssertTrue(out.allSatisfy { $0.hasSuffix("\n") && !$0.contains("\r") })
    }

    func testInteractiveModeRedrawsOneLine() {
        var out: [String] = []
        let p = Progress(total: 3, label: "run", interactive: true) { out.append($0) }
        p.update(step: 3, values: [])
        p.message("saved")
        p.finish()
        XCTAssertTrue(out[0].hasPrefix("\rrun  3/3  "), out[0])
        XCTAssertTrue(out[1].hasPrefix("\r\u{1B}[Ksaved\nrun  3/3"), out[1])
        XCTAssertTrue(out.last!.hasSuffix("\n"))
    }
}
