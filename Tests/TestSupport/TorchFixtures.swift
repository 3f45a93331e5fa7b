import XCTest
import Foundation
import Autograd
import Formats
import TensorCore

// Reading the PyTorch fixtures that scripts/make_fixtures.py writes into a test target's
// Fixtures/ folder, and the one comparison rule every fixture test uses:
//     |a_i - b_i| <= rtol * (|b_i| + mean_j |b_j|)
// a = ours, b = torch. The mean|b| term is the floor that lets elements near zero compare at the
// tensor's scale (a cancelling sum can be ~0 in float64 and 1e-8 in float32 without anything
// being wrong); for large elements the rule is a plain relative error.

public struct TorchFixtureError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// Reads Fixtures/<name>.safetensors from `bundle`. The bundle is a parameter because each
/// test target keeps its own fixtures: pass that target's `Bundle.module`.
public func loadTorchFixture(_ name: String, bundle: Bundle) throws -> SafetensorsArchive {
    guard let url = bundle.url(forResource: name, withExtension: "safetensors", subdirectory: "Fixtures") else {
        throw TorchFixtureError("Fixtures/\(name).safetensors is not in the test bundle \(bundle.bundlePath)")
    }
    return try Safetensors.read(url)
}

extension SafetensorsArchive {
    /// The named tensor, or an error naming it.
    public func require(_ name: String) throws -> Tensor {
        guard let t = self[name] else { throw TorchFixtureError("fixture lacks tensor '\(name)'") }
        return t
    }

    /// A metadata entry holding a JSON object of objects (case or module name -> parameters).
    public func jsonCases(_ key: String) throws -> [String: [String: Any]] {
        guard let text = metadata[key], let data = text.data(using: .utf8),
              let cases = try JSONSerialization.jsonObject(with: data) as? [String: [String: Any]] else {
            throw TorchFixtureError("fixture metadata entry '\(key)' is missing or not a JSON object of objects")
        }
        return cases
    }
}

/// The JSON parameters of one fixture case, with typed getters that name what is missing.
public struct FixtureParams {
    public let name: String
    public let json: [String: Any]
    public let archive: SafetensorsArchive

    public init(name: String, json: [String: Any], archive: SafetensorsArchive) {
        self.name = name; self.json = json; self.archive = archive
    }

    public func int(_ key: String) throws -> Int {
        guard let v = json[key] as? NSNumber else { throw missing(key, "a number") }
        return v.intValue
    }
    public func float(_ key: String) throws -> Float {
        guard let v = json[key] as? NSNumber else { throw missing(key, "a number") }
        return v.floatValue
    }
    public func bool(_ key: String) throws -> Bool {
        guard let v = json[key] as? Bool else { throw missing(key, "a bool") }
        return v
    }
    public func ints(_ key: String) throws -> [Int] {
        guard let v = json[key] as? [NSNumber] else { throw missing(key, "a list") }
        return v.map { $0.intValue }
    }
    public func intLists(_ key: String) throws -> [[Int]] {
        guard let v = json[key] as? [[NSNumber]] else { throw missing(key, "a list of lists") }
        return v.map { $0.map { $0.intValue } }
    }
    /// An extra tensor of the case, e.g. `attention.mask`.
    public func tensor(_ suffix: String) throws -> Tensor {
        try archive.require("\(name).\(suffix)")
    }

    private func missing(_ key: String, _ kind: String) -> TorchFixtureError {
        TorchFixtureError("\(name): parameter '\(key)' is missing or not \(kind)")
    }
}

/// A private copy (the archive's tensors are shared between tests, and backward writes `.grad`).
public func fixtureCopy(_ t: Tensor, requiresGrad: Bool = false) -> Tensor {
    Tensor(shape: t.shape, storage: t.storage.copy(), requiresGrad: requiresGrad)
}

/// Worst |a - b| / (|b| + mean|b|) over all elements (in Double), with its index.
public func torchError(_ a: Tensor, _ b: Tensor) -> (err: Double, index: Int) {
    precondition(a.count == b.count)
    let n = b.count
    if n == 0 { return (0, 0) }
    var meanAbs = 0.0
    for i in 0..<n { meanAbs += Swift.abs(Double(b.storage.ptr[i])) }
    meanAbs /= Double(n)
    var worst = 0.0, at = 0
    for i in 0..<n {
        let x = Double(a.storage.ptr[i]), y = Double(b.storage.ptr[i])
        // A NaN must fail: (NaN > worst) is false, so test it explicitly.
        let e = x.isNaN || y.isNaN ? Double.infinity
            : Swift.abs(x - y) / max(Swift.abs(y) + meanAbs, Double.leastNonzeroMagnitude)
        if e > worst { worst = e; at = i }
    }
    return (worst, at)
}

/// Asserts the rule above and returns the worst error (for the printed summary; infinity on a
/// shape mismatch).
@discardableResult
public func assertMatchesTorch(_ got: Tensor, _ want: Tensor, rtol: Double, _ what: String,
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
