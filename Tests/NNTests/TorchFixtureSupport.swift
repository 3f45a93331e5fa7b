import XCTest
import Foundation
import Autograd
import NN
import TensorCore

// Shared by TorchOptimizerTests and TorchModuleTests: reading the fixtures that
// scripts/make_fixtures.py writes into Fixtures/, and the one comparison rule they use
// (the same as AutogradTests/TorchFixtureTests.swift):
//     |a_i - b_i| <= rtol * (|b_i| + mean_j |b_j|)
// a = ours, b = torch; the mean|b| term lets near-zero elements compare at the tensor's scale.

struct TorchFixtureError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// Reads Fixtures/<name>.safetensors from the test bundle.
func loadTorchFixture(_ name: String) throws -> SafetensorsArchive {
    guard let url = Bundle.module.url(forResource: name, withExtension: "safetensors", subdirectory: "Fixtures") else {
        throw TorchFixtureError("Fixtures/\(name).safetensors is not in the test bundle \(Bundle.module.bundlePath)")
    }
    return try Safetensors.read(url)
}

extension SafetensorsArchive {
    /// The named tensor, or an error naming it.
    func require(_ name: String) throws -> Tensor {
        guard let t = self[name] else { throw TorchFixtureError("fixture lacks tensor '\(name)'") }
        return t
    }
}

/// A private copy (the archive's tensors are shared between tests).
func fixtureCopy(_ t: Tensor, requiresGrad: Bool = false) -> Tensor {
    Tensor(shape: t.shape, storage: t.storage.copy(), requiresGrad: requiresGrad)
}

/// Worst |a - b| / (|b| + mean|b|) over all elements (NaN counts as infinite).
func torchError(_ a: Tensor, _ b: Tensor) -> (err: Double, index: Int) {
    precondition(a.count == b.count)
    let n = b.count
    if n == 0 { return (0, 0) }
    var meanAbs = 0.0
    for i in 0..<n { meanAbs += abs(Double(b.storage.ptr[i])) }
    meanAbs /= Double(n)
    var worst = 0.0, at = 0
    for i in 0..<n {
        let x = Double(a.storage.ptr[i]), y = Double(b.storage.ptr[i])
        let e = x.isNaN || y.isNaN ? Double.infinity : abs(x - y) / max(abs(y) + meanAbs, Double.leastNonzeroMagnitude)
        if e > worst { worst = e; at = i }
    }
    return (worst, at)
}

/// Asserts the rule above and returns the worst error (for the printed summary).
@discardableResult
func assertMatchesTorch(_ got: Tensor, _ want: Tensor, rtol: Double, _ what: String,
                        file: StaticString = #filePath, line: UInt = #line) -> Double {
    guard got.shape == want.shape else {
        XCTFail("\(what): shape \(got.shape), torch \(want.shape)", file: file, line: line)
        return .infinity
    }
    let (e, at) = torchError(got, want)
    if !(e <= rtol) {
        XCTFail("\(what): error \(e) > \(rtol) at [\(at)]: ours \(got.storage.ptr[at]), torch \(want.storage.ptr[at])",
                file: file, line: line)
    }
    return e
}
