import Foundation
import XCTest
import Autograd
import NN
import TensorCore
import TestSupport

final class LayerTests: XCTestCase {
    func testConv2dShapesNamesAndValues() throws {
        var rng = RNG(seed: 2)
        let conv = Conv2d(3, 4, kernel: 3, stride: 2, padding: 1, rng: &rng)
        XCTAssertEqual(conv.namedParameters().map { $0.0 }, ["weight", "bias"])
        XCTAssertEqual(conv.weight.shape, [4, 3, 3, 3])
        XCTAssertEqual(conv.bias?.shape, [4])
        let bound = 1 / Float(27).squareRoot()
        XCTAssertTrue((conv.weight.scalars + conv.bias!.scalars).allSatisfy { abs($0) <= bound })
        let x = randn([2, 3, 7, 6])
        let y = try conv(x)
        XCTAssertEqual(y.shape, [2, 4, 4, 3])
        // Direct cross-correlation for one output element per channel.
        let xs = x.scalars, w = conv.weight.scalars, b = conv.bias!.scalars, ys = y.scalars
        for (n, o, i, j) in [(0, 0, 0, 0), (1, 3, 3, 2), (1, 1, 2, 1)] {
            var s = Double(b[o])
            for c in 0..<3 { for ki in 0..<3 { for kj in 0..<3 {
                let hi = i * 2 - 1 + ki, wj = j * 2 - 1 + kj
                guard hi >= 0, hi < 7, wj >= 0, wj < 6 else { continue }
                s += Double(xs[((n * 3 + c) * 7 + hi) * 6 + wj]) * Double(w[((o * 3 + c) * 3 + ki) * 3 + kj])
            } } }
            XCTAssertEqual(ys[((n * 4 + o) * 4 + i) * 3 + j], Float(s), accuracy: 1e-5)
        }
        try gradCheck("conv2d", [x] + conv.parameters(), maxProbes: 24, seed: 99) { _ in try conv(x) }
    }

    func testNorms() throws {
        let gn = GroupNorm(groups: 2, channels: 4)
        XCTAssertEqual(gn.namedParameters().map { $0.0 }, ["weight", "bias"])
        let x = randn([2, 4, 3, 3], scale: 3) + 1
        let y = try gn(x).scalars
        for blk in 0..<4 {  // (sample, group) blocks of 2 * 9 contiguous values
            let v = y[(blk * 18)..<(blk * 18 + 18)].map(Double.init)
            let mean = v.reduce(0, +) / 18
            let varc = v.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / 18
            XCTAssertEqual(mean, 0, accuracy: 1e-5)
            XCTAssertEqual(varc, 1, accuracy: 1e-3)
        }
        let ln = LayerNorm(5)
        let z = try ln(randn([3, 5], scale: 2)).scalars
        for r in 0..<3 {
            let v = z[(r * 5)..<(r * 5 + 5)].map(Double.init)
            XCTAssertEqual(v.reduce(0, +) / 5, 0, accuracy: 1e-5)
        }
        XCTAssertEqual(GroupNorm(groups: 1, channels: 3, affine: false).namedParameters().count, 0)
        // Affine parameters take part in the gradient.
        gn.weight!.storage.ptr[1] = 1.5
        gn.bias!.storage.ptr[2] = -0.3
        try gradCheck("groupnorm", [x] + gn.parameters(), maxProbes: 24, seed: 99) { _ in try gn(x) }
    }

    func testEmbeddingAndMLP() throws {
        var rng = RNG(seed: 5)
        let emb = Embedding(10, 4, rng: &rng)
        let e = try emb([3, 0, 3], shape: [1, 3])
        XCTAssertEqual(e.shape, [1, 3, 4])
        XCTAssertEqual(Array(e.scalars[0..<4]), Array(emb.weight.scalars[12..<16]))
        XCTAssertEqual(Array(e.scalars[8..<12]), Array(emb.weight.scalars[12..<16]))
        assertThrows(["out of range"]) { _ = try emb([10], shape: [1]) }

        let mlp = Sequential.mlp([2, 8, 8, 3], activation: .silu, rng: &rng)
        XCTAssertEqual(mlp.namedParameters().map { $0.0 },
                       ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"])
        let x = randn([5, 2])
        XCTAssertEqual(try mlp(x).shape, [5, 3])
        try gradCheck("mlp", [x] + mlp.parameters(), maxProbes: 24, seed: 99) { _ in try mlp(x) }
        for kind in Activation.Kind.allCases {
            let a = Activation(kind)
            XCTAssertEqual(try a(x).shape, x.shape)
        }
    }

    func testDropoutFollowsModeAndRNG() throws {
        let d = Dropout(0.5, rng: RNG(seed: 3))
        let x = Tensor.ones([1000])
        let y1 = try d(x).scalars
        XCTAssertTrue(y1.allSatisfy { $0 == 0 || $0 == 2 })
        XCTAssertEqual(Double(y1.filter { $0 == 0 }.count), 500, accuracy: 60)
        XCTAssertEqual(d.rng.counter, 1)
        d.eval()
        XCTAssertEqual(try d(x).scalars, x.scalars)
        let d2 = Dropout(0.5, rng: RNG(seed: 3))
        XCTAssertEqual(try d2(x).scalars, y1)
    }

    /// MHA against a direct per-head computation in Double (projections, scaled softmax,
    /// weighted sum, output projection), for cross-attention with 2 heads and padding.
    func testMultiheadAttentionMatchesReference() throws {
        var rng = RNG(seed: 6)
        let (b, lq, lk, d, dc, h) = (2, 3, 4, 4, 5, 2)
        let mha = MultiheadAttention(embedDim: d, numHeads: h, contextDim: dc, rng: &rng)
        XCTAssertEqual(mha.namedParameters().map { $0.0 }, [
            "q_proj.weight", "q_proj.bias", "k_proj.weight", "k_proj.bias",
            "v_proj.weight", "v_proj.bias", "out_proj.weight", "out_proj.bias",
        ])
        XCTAssertEqual(mha.kProj.weight.shape, [d, dc])
        let x = randn([b, lq, d], seed: 1), ctx = randn([b, lk, dc], seed: 2)
        let pad = [false, false, false, true, false, false, false, false]
        let y = try mha(x, context: ctx, keyPaddingMask: pad)
        XCTAssertEqual(y.shape, [b, lq, d])

        func proj(_ lin: Linear, _ t: [Float], rows: Int) -> [[Double]] {
            let w = lin.weight.scalars, bias = lin.bias!.scalars
            let nIn = lin.inFeatures, nOut = lin.outFeatures
            var out = [[Double]](repeating: [Double](repeating: 0, count: nOut), count: rows)
            for r in 0..<rows {
                for o in 0..<nOut {
                    var s = Double(bias[o])
                    for i in 0..<nIn { s += Double(t[r * nIn + i]) * Double(w[o * nIn + i]) }
                    out[r][o] = s
                }
            }
            return out
        }
        let q = proj(mha.qProj, x.scalars, rows: b * lq)
        let k = proj(mha.kProj, ctx.scalars, rows: b * lk)
        let v = proj(mha.vProj, ctx.scalars, rows: b * lk)
        var attn = [Float](repeating: 0, count: b * lq * d)
        let dh = d / h
        for bi in 0..<b { for i in 0..<lq { for hi in 0..<h {
            var scores = [Double](repeating: -.infinity, count: lk)
            for j in 0..<lk where !pad[bi * lk + j] {
                var s = 0.0
                for c in 0..<dh { s += q[bi * lq + i][hi * dh + c] * k[bi * lk + j][hi * dh + c] }
                scores[j] = s / Double(dh).squareRoot()
            }
            let m = scores.max()!
            scores = scores.map { Foundation.exp($0 - m) }
            let z = scores.reduce(0, +)
            for c in 0..<dh {
                var s = 0.0
                for j in 0..<lk { s += scores[j] / z * v[bi * lk + j][hi * dh + c] }
                attn[(bi * lq + i) * d + hi * dh + c] = Float(s)
            }
        } } }
        let expected = proj(mha.outProj, attn, rows: b * lq).flatMap { $0.map(Float.init) }
        assertClose(y.scalars, expected, atol: 1e-5, rtol: 1e-5, "mha")

        try gradCheck("mha", [x, ctx] + mha.parameters(), maxProbes: 24, seed: 99) { _ in try mha(x, context: ctx, keyPaddingMask: pad) }
        assertThrows(["keyPaddingMask has 3 entries"]) { _ = try mha(x, context: ctx, keyPaddingMask: [true, false, true]) }
        assertThrows(["context must be [2, L, 5]"]) { _ = try mha(x) }
    }

    func testSelfAttentionCausalAndPaddingIsolation() throws {
        var rng = RNG(seed: 7)
        let mha = MultiheadAttention(embedDim: 8, numHeads: 4, rng: &rng)
        let x = randn([1, 5, 8])
        let y = try mha(x, attentionMask: MultiheadAttention.causalMask(5)).scalars
        // Changing the last position leaves the outputs of the earlier ones unchanged.
        let x2 = Tensor(shape: x.shape, storage: x.storage.copy())
        for c in 0..<8 { x2.storage.ptr[4 * 8 + c] += 1 }
        let y2 = try mha(x2, attentionMask: MultiheadAttention.causalMask(5)).scalars
        assertClose(Array(y2[0..<32]), Array(y[0..<32]), atol: 1e-6, rtol: 1e-6, "causal prefix")
        XCTAssertNotEqual(Array(y2[32..<40]), Array(y[32..<40]))
        // A padded key does not influence any output, whatever its value.
        let pad = [false, false, false, false, true]
        let a = try mha(x, context: x, keyPaddingMask: pad).scalars
        let b = try mha(x2, context: x2, keyPaddingMask: pad).scalars
        assertClose(Array(b[0..<32]), Array(a[0..<32]), atol: 1e-6, rtol: 1e-6, "padding")
    }

    func testSinusoidalTimeEmbedding() throws {
        let te = SinusoidalTimeEmbedding(dim: 8)
        XCTAssertEqual(te.namedParameters().count, 0)
        let e = try te(Tensor([0, 0.25], shape: [2]))
        XCTAssertEqual(e.shape, [2, 8])
        XCTAssertEqual(Array(e.scalars[0..<8]), [0, 0, 0, 0, 1, 1, 1, 1])
        // t = 0.25 -> s = 250; frequencies 10000^(-i/3), i = 0..<4.
        for i in 0..<4 {
            let a = 250 * pow(10_000.0, -Double(i) / 3)
            XCTAssertEqual(e.scalars[8 + i], Float(sin(a)), accuracy: 1e-6)
            XCTAssertEqual(e.scalars[12 + i], Float(cos(a)), accuracy: 1e-6)
        }
        XCTAssertEqual(SinusoidalTimeEmbedding(dim: 4, scale: 999)([0.5]).scalars[0], Float(sin(499.5)), accuracy: 1e-6)
        assertThrows(["t must be [B] or [B, 1]"]) { _ = try te(Tensor.zeros([2, 2])) }
    }

    /// A small U-Net-like block through every layer type: finite differences agree with
    /// backward for all parameters.
    func testGradientsThroughSmallBlock() throws {
        final class Block: Module {
            let norm: GroupNorm, conv: Conv2d, temb: Linear, attn: MultiheadAttention, ln: LayerNorm
            let time = SinusoidalTimeEmbedding(dim: 4)
            var isTraining = true
            init(rng: inout RNG) {
                norm = GroupNorm(groups: 2, channels: 4)
                conv = Conv2d(4, 4, kernel: 3, padding: 1, rng: &rng)
                temb = Linear(4, 4, rng: &rng)
                ln = LayerNorm(4)
                attn = MultiheadAttention(embedDim: 4, numHeads: 2, contextDim: 3, rng: &rng)
            }
            func children() -> [(String, Module)] {
                [("norm", norm), ("conv", conv), ("temb", temb), ("ln", ln), ("attn", attn)]
            }
            func callAsFunction(_ x: Tensor, t: [Float], ctx: Tensor) throws -> Tensor {
                let n = x.shape[0]
                var h = try conv(norm(x).silu())
                h = try h + temb(time(t)).reshaped([n, 4, 1, 1])
                let seq = try h.reshaped([n, 4, 4]).permuted([0, 2, 1])  // [N, HW, C]
                let a = try attn(ln(seq), context: ctx)
                return try x + a.permuted([0, 2, 1]).reshaped([n, 4, 2, 2])
            }
        }
        var rng = RNG(seed: 9)
        let blk = Block(rng: &rng)
        XCTAssertEqual(blk.namedParameters().map { $0.0 }.filter { $0.hasPrefix("attn.") }.count, 8)
        let x = randn([2, 4, 2, 2], seed: 3), ctx = randn([2, 3, 3], seed: 4)
        try gradCheck("block", [x, ctx] + blk.parameters(), maxProbes: 24, seed: 99) { _ in try blk(x, t: [0.1, 0.7], ctx: ctx) }
    }
}
