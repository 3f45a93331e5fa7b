import XCTest
import TensorCore

final class PhiloxTests: XCTestCase {
    /// Known-answer test from the Random123 distribution (kat_vectors: philox4x32_10,
    /// counter = 0, key = 0 -> 6627e8d5 e169c58d bc57ac4c 9b00dbd8).
    func testKnownAnswer() {
        let p = Philox(seed: 0)
        let r = p.block(0, 0, 0, 0)
        XCTAssertEqual([r.0, r.1, r.2, r.3], [0x6627_e8d5, 0xe169_c58d, 0xbc57_ac4c, 0x9b00_dbd8])
    }

    /// Noise of a stream is the same whether drawn at once or in pieces.
    func testOffsetsAreConsistent() {
        let p = Philox(seed: 42)
        var whole = [Float](repeating: 0, count: 37)
        whole.withUnsafeMutableBufferPointer { p.fillNormal($0.baseAddress!, count: 37, stream: 7) }
        var parts = [Float](repeating: 0, count: 37)
        parts.withUnsafeMutableBufferPointer { b in
            p.fillNormal(b.baseAddress!, count: 5, stream: 7, offset: 0)
            p.fillNormal(b.baseAddress! + 5, count: 18, stream: 7, offset: 5)
            p.fillNormal(b.baseAddress! + 23, count: 14, stream: 7, offset: 23)
        }
        XCTAssertEqual(whole, parts)
    }

    func testNormalMoments() {
        let p = Philox(seed: 1)
        let n = 200_000
        var v = [Float](repeating: 0, count: n)
        v.withUnsafeMutableBufferPointer { p.fillNormal($0.baseAddress!, count: n, stream: 3) }
        let mean = v.reduce(0, +) / Float(n)
        let varc = v.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(n)
        XCTAssertEqual(mean, 0, accuracy: 0.01)
        XCTAssertEqual(varc, 1, accuracy: 0.01)
    }

    func testVMathExpAccuracy() {
        var maxRel: Float = 0
        var x: Float = -80
        while x < 80 {
            let e = VMath.exp(x), ref = Float(Foundation.exp(Double(x)))
            maxRel = max(maxRel, abs(e - ref) / ref)
            x += 0.0137
        }
        XCTAssertLessThan(maxRel, 1e-6)
    }
}
import Foundation
