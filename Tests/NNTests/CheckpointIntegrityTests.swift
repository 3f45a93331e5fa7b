import Foundation
import XCTest
import Autograd
import NN
import TensorCore
import TestSupport
import Formats

/// The tensors of a safetensors file by name (optionally only those under `prefix`, with it removed).
func weightsOf(_ url: URL, prefix: String = "") throws -> [String: [Float]] {
    let a = try Safetensors.read(url)
    var out: [String: [Float]] = [:]
    for (k, t) in a.tensors where k.hasPrefix(prefix) { out[String(k.dropFirst(prefix.count))] = t.scalars }
    return out
}

/// One checkpoint = one atomic unit; non-finite weights are never written; damage is refused.
final class CheckpointIntegrityTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try makeTempDir("ckpt-integrity") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func temporaries() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.contains(".tmp-") }
    }

    /// The state file alone resumes (export missing: killed before the first export was written).
    func testStateFileAloneIsACompleteCheckpoint() throws {
        var r1 = RNG(seed: 1), r2 = RNG(seed: 2)
        let net = TinyNet(rng: &r1)
        let url = dir.appendingPathComponent("run.safetensors")
        try saveTrainingCheckpoint(net, state: TrainingState(step: 7), metadata: ["stage": "teacher"], to: url)
        try FileManager.default.removeItem(at: url)
        let other = TinyNet(rng: &r2)
        let (meta, state) = try loadTrainingCheckpoint(into: other, from: url)
        XCTAssertEqual(state.step, 7)
        XCTAssertEqual(meta["stage"], "teacher")
        XCTAssertEqual(other.parameters().map(\.scalars), net.parameters().map(\.scalars))
        // The export is back, with the users' names (no "model." prefix) and the checksum verified.
        let back = try Safetensors.read(url)
        XCTAssertTrue(back.checksumVerified)
        XCTAssertEqual(Set(back.names), Set(net.stateDict().map(\.0)))
        XCTAssertEqual(back.metadata["step"], "7")
    }

    /// A version-1 state (before weights moved into it) still resumes with its weights file.
    func testVersion1StateStillLoads() throws {
        var r1 = RNG(seed: 1), r2 = RNG(seed: 2)
        let net = TinyNet(rng: &r1)
        let url = dir.appendingPathComponent("old.safetensors")
        let stateURL = TrainingState.url(besideCheckpoint: url)
        try TrainingState(step: 4).save(to: stateURL)
        var meta = try Safetensors.readMetadata(stateURL)
        meta["version"] = "1"
        try Safetensors.write([], metadata: meta, to: stateURL)
        try saveCheckpoint(net, metadata: ["step": "4"], to: url)
        let other = TinyNet(rng: &r2)
        XCTAssertEqual(try loadTrainingCheckpoint(into: other, from: url).state.step, 4)
        XCTAssertEqual(other.parameters().map(\.scalars), net.parameters().map(\.scalars))
        try saveCheckpoint(net, metadata: ["step": "5"], to: url)
        assertThrows(["checkpoint \(url.path): weights are from step 5 but", "is from step 4"]) {
            _ = try loadTrainingCheckpoint(into: other, from: url)
        }
    }

    func testNonFiniteWeightsAreNeverWritten() throws {
        var r = RNG(seed: 3)
        let net = TinyNet(rng: &r)
        let url = dir.appendingPathComponent("nan.safetensors")
        let (name, t) = net.stateDict()[1]
        t.storage.ptr[t.count - 1] = .nan
        assertThrows(["safetensors \(url.path): tensor '\(name)': refusing to write a non-finite value (nan at flat index \(t.count - 1)"]) {
            try saveCheckpoint(net, to: url)
        }
        assertThrows(["tensor 'model.\(name)': refusing to write a non-finite value"]) {
            try saveTrainingCheckpoint(net, state: TrainingState(step: 1), to: url)
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: url.path))
        XCTAssertFalse(FileManager.default.fileExists(atPath: TrainingState.url(besideCheckpoint: url).path))
        XCTAssertEqual(try temporaries(), [])
    }

    /// A flipped bit in the data is caught by the checksum; a file without one (Python) is
    /// still checked for finite values.
    func testDamageAndNonFiniteValuesAreRefusedOnLoad() throws {
        var r1 = RNG(seed: 4), r2 = RNG(seed: 5)
        let net = TinyNet(rng: &r1), other = TinyNet(rng: &r2)
        let url = dir.appendingPathComponent("flip.safetensors")
        try saveCheckpoint(net, to: url)
        var bytes = try Data(contentsOf: url)
        bytes[bytes.count - 5] ^= 0x10
        try bytes.write(to: url)
        assertThrows(["safetensors \(url.path): damaged file: its tensors and metadata hash to", "content_sha256"]) {
            try loadCheckpoint(into: other, from: url)
        }
        // Python-style: no checksum, an infinity in the data.
        let py = dir.appendingPathComponent("py.safetensors")
        let header = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}"
        var file = Data(withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { Array($0) }) + Data(header.utf8)
        for v: Float in [1, .infinity] { file += withUnsafeBytes(of: v.bitPattern.littleEndian) { Data($0) } }
        try file.write(to: py)
        XCTAssertFalse(try Safetensors.read(py).checksumVerified)
        assertThrows(["safetensors \(py.path): tensor 'w': holds a non-finite value (inf at flat index 1 of shape [2])"]) {
            _ = try readCheckpointArchive(py)
        }
    }

    /// The EMA error names the state file it came from.
    func testEMAErrorNamesTheFile() throws {
        var r = RNG(seed: 6)
        let net = TinyNet(rng: &r)
        let url = dir.appendingPathComponent("ema.safetensors")
        let stateURL = TrainingState.url(besideCheckpoint: url)
        try saveTrainingCheckpoint(net, state: TrainingState(step: 2, ema: EMAState(shadow: [:], updates: 1, decay: 0.9)), to: url)
        let state = try TrainingState.load(from: stateURL)
        assertThrows(["training state \(stateURL.path): EMA state has no shadow for"]) {
            try EMA(net, decay: 0.9).importState(state.ema!)
        }
    }
}
