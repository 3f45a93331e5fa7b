import Foundation
import XCTest

/// A fresh empty folder under the temporary directory.
func makeTempDir(_ tag: String = "nn") throws -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("nntests-\(tag)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// Asserts that `body` throws and that the error's description contains every fragment.
func assertThrows(_ fragments: [String], file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
    do {
        try body()
        XCTFail("expected an error containing \(fragments)", file: file, line: line)
    } catch {
        let text = "\(error)"
        if ProcessInfo.processInfo.environment["NN_PRINT_ERRORS"] != nil { print("ERROR TEXT: \(text)") }
        for f in fragments where !text.contains(f) {
            XCTFail("error text\n  \(text)\nlacks\n  \(f)", file: file, line: line)
        }
    }
}

func assertClose(_ a: [Float], _ b: [Float], tol: Float = 1e-5, _ msg: String = "", file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, "\(msg): counts", file: file, line: line)
    for (i, (x, y)) in zip(a, b).enumerated() where abs(x - y) > tol * max(1, abs(y)) {
        XCTFail("\(msg): [\(i)] \(x) vs \(y)", file: file, line: line)
        return
    }
}
