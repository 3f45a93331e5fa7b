import Foundation
import XCTest
import Autograd
import NN
import TensorCore

/// Finite-difference check of the gradients of sum(f(inputs) * R) (R fixed random) for the
/// given leaves (inputs or a module's parameters). Central differences in Float32 carry ~1e-3
/// relative noise, hence the loose tolerances.
func checkGradients(_ name: String, _ leaves: [Tensor], eps: Float = 1e-2, rtol: Float = 1e-2, atol: Float = 1e-3,
                    maxProbes: Int = 24, file: StaticString = #filePath, line: UInt = #line,
                    _ f: () throws -> Tensor) throws {
    for x in leaves { x.requiresGrad = true; x.grad = nil }
    var rng = RNG(seed: 99)
    let probe = try noGrad { try f() }
    let r = Tensor.randn(probe.shape, rng: &rng)
    func objective() throws -> Double {
        let y = try noGrad { try f() }
        var s = 0.0
        for i in 0..<y.count { s += Double(y.storage.ptr[i]) * Double(r.storage.ptr[i]) }
        return s
    }
    try (f() * r).sum().backward()
    for (li, x) in leaves.enumerated() {
        guard let g = x.grad else { XCTFail("\(name): leaf \(li) got no gradient", file: file, line: line); continue }
        XCTAssertEqual(g.shape, x.shape, "\(name): gradient shape of leaf \(li)", file: file, line: line)
        let stride = max(1, x.count / maxProbes)
        var i = 0
        while i < x.count {
            let old = x.storage.ptr[i]
            x.storage.ptr[i] = old + eps
            let up = try objective()
            x.storage.ptr[i] = old - eps
            let down = try objective()
            x.storage.ptr[i] = old
            let numeric = Float((up - down) / Double(2 * eps))
            let analytic = g.storage.ptr[i]
            if abs(numeric - analytic) > atol + rtol * abs(numeric) {
                XCTFail("\(name): leaf \(li)[\(i)] analytic \(analytic) vs numeric \(numeric)", file: file, line: line)
                return
            }
            i += stride
        }
    }
}

func randn(_ shape: [Int], seed: UInt64 = 7, scale: Float = 1) -> Tensor {
    var rng = RNG(seed: seed)
    return Tensor.randn(shape, rng: &rng) * scale
}

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
