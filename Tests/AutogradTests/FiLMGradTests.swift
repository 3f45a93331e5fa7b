import XCTest
import Autograd
import TensorCore
import TestSupport

final class FiLMGradTests: XCTestCase {
    /// The ops the U-Net's residual blocks ran before the fused op.
    func unfused(_ x: Tensor, _ ss: Tensor) throws -> Tensor {
        let c = x.shape[1]
        let s = try ss.reshaped([x.shape[0], 2 * c, 1, 1])
        return try x * (s.slice(axis: 1, range: 0..<c) + 1) + s.slice(axis: 1, range: c..<(2 * c))
    }

    /// Output and both gradients equal the unfused ops' bit for bit (so no chain result moves),
    /// at the U-Net's 28x28, 14x14 and 7x7 planes and a plane shorter than one SIMD vector; also
    /// with only the modulation needing a gradient.
    func testEqualsTheUnfusedOpsExactly() throws {
        for shape in [[16, 32, 28, 28], [4, 64, 14, 14], [3, 16, 7, 7], [2, 8, 3, 5]] {
            let n = shape[0], c = shape[1]
            for needX in [true, false] {
                func run(_ fused: Bool) throws -> [[Float]] {
                    let x = randn(shape, seed: 3), ss = randn([n, 2 * c], seed: 4, scale: 0.5), proj = randn(shape, seed: 5)
                    x.requiresGrad = needX; ss.requiresGrad = true
                    let y = fused ? try x.film(ss) : try unfused(x, ss)
                    try (y * proj).sum().backward()
                    XCTAssertEqual(x.grad == nil, !needX)
                    return [y.scalars, x.grad?.scalars ?? [], ss.grad!.scalars]
                }
                let fused = try run(true), plain = try run(false)
                for (k, what) in ["output", "dx", "dss"].enumerated() {
                    XCTAssertEqual(fused[k], plain[k], "film \(shape) \(what), input needs grad: \(needX)")
                }
            }
        }
    }

    func testGradients() throws {
        try gradCheck("film", [randn([2, 3, 4, 5], seed: 1), randn([2, 6], seed: 2, scale: 0.5)]) { try $0[0].film($0[1]) }
        try gradCheck("film 3-D", [randn([3, 2, 7], seed: 3), randn([3, 4], seed: 4, scale: 0.5)]) { try $0[0].film($0[1]) }
        try gradCheck("film [N, C]", [randn([3, 2], seed: 5), randn([3, 4], seed: 6, scale: 0.5)]) { try $0[0].film($0[1]) }
    }

    func testShapeErrors() {
        assertThrows(["film", "[2, 6]", "[2, 3, 4, 4]", "[2, 5]"]) { _ = try randn([2, 3, 4, 4]).film(randn([2, 5])) }
        assertThrows(["film", "[2, 6]", "[3, 6]"]) { _ = try randn([2, 3, 4, 4]).film(randn([3, 6])) }
        assertThrows(["film", "[N, C, ...]", "[4]"]) { _ = try randn([4]).film(randn([4, 2])) }
    }
}
