import Foundation
import XCTest
import Autograd

// The test suite's one closeness rule and its error-message checks.

/// Fails unless every |got[i] - want[i]| <= max(atol, rtol * |want[i]|) and the counts match.
/// `atol` alone is an absolute bound; `atol == rtol` bounds the error by tol * max(1, |want|).
public func assertClose(_ got: [Double], _ want: [Double], atol: Double, rtol: Double = 0, _ msg: String = "",
                        file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(got.count, want.count, "\(msg): counts", file: file, line: line)
    for (i, (x, y)) in zip(got, want).enumerated() where !(abs(x - y) <= max(atol, rtol * abs(y))) {
        XCTFail("\(msg): [\(i)] \(x) vs \(y)", file: file, line: line)
        return
    }
}

public func assertClose(_ got: [Float], _ want: [Float], atol: Float, rtol: Float = 0, _ msg: String = "",
                        file: StaticString = #filePath, line: UInt = #line) {
    assertClose(got.map(Double.init), want.map(Double.init), atol: Double(atol), rtol: Double(rtol), msg, file: file, line: line)
}

public func assertClose(_ got: Tensor, _ want: [Float], atol: Float, rtol: Float = 0, _ msg: String = "",
                        file: StaticString = #filePath, line: UInt = #line) {
    assertClose(got.scalars, want, atol: atol, rtol: rtol, msg, file: file, line: line)
}

public func assertClose(_ got: Tensor, _ want: [Double], atol: Double, rtol: Double = 0, _ msg: String = "",
                        file: StaticString = #filePath, line: UInt = #line) {
    assertClose(got.scalars.map(Double.init), want, atol: atol, rtol: rtol, msg, file: file, line: line)
}

/// Asserts that `body` throws and that the error's description contains every fragment.
public func assertThrows(_ fragments: [String], file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
    do {
        try body()
        XCTFail("expected an error containing \(fragments)", file: file, line: line)
    } catch {
        let text = "\(error)"
        if ProcessInfo.processInfo.environment["TESTS_PRINT_ERRORS"] != nil { print("ERROR TEXT: \(text)") }
        for f in fragments where !text.contains(f) {
            XCTFail("error text\n  \(text)\nlacks\n  \(f)", file: file, line: line)
        }
    }
}

/// A fresh empty folder under the temporary directory.
public func makeTempDir(_ tag: String = "tests") throws -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("reflowtests-\(tag)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}
