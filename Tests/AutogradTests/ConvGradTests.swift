import XCTest
import Autograd
import TensorCore
import TestSupport

final class ConvGradTests: XCTestCase {
    /// Direct convolution in Double: the definition, one output at a time.
    func naiveConv(_ x: Tensor, _ w: Tensor, _ b: Tensor?, stride s: Int, padding p: Int) -> [Double] {
        let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let (o, kh, kw) = (w.shape[0], w.shape[2], w.shape[3])
        let oh = (h + 2 * p - kh) / s + 1, ow = (wd + 2 * p - kw) / s + 1
        let xs = x.scalars, ws = w.scalars, bs = b?.scalars
        var out = [Double](repeating: 0, count: n * o * oh * ow)
        for i in 0..<n { for oo in 0..<o { for y in 0..<oh { for z in 0..<ow {
            var acc = Double(bs?[oo] ?? 0)
            for cc in 0..<c { for ki in 0..<kh { for kj in 0..<kw {
                let ih = y * s - p + ki, iw = z * s - p + kj
                if ih < 0 || ih >= h || iw < 0 || iw >= wd { continue }
                acc += Double(xs[((i * c + cc) * h + ih) * wd + iw]) * Double(ws[((oo * c + cc) * kh + ki) * kw + kj])
            } } }
            out[((i * o + oo) * oh + y) * ow + z] = acc
        } } } }
        return out
    }

    // (N, C, H, W, O, kh, kw, stride, padding)
    let cases: [(Int, Int, Int, Int, Int, Int, Int, Int, Int)] = [
        (2, 3, 5, 5, 4, 3, 3, 1, 0),
        (2, 3, 5, 5, 4, 3, 3, 1, 1),
        (3, 2, 7, 6, 3, 3, 3, 2, 1),
        (2, 3, 6, 7, 2, 3, 3, 2, 0),
        (2, 4, 5, 3, 3, 1, 1, 1, 0),   // pointwise path
        (2, 4, 5, 5, 3, 1, 1, 2, 0),   // 1x1 with stride: general path
        (1, 2, 4, 4, 2, 1, 1, 1, 1),   // 1x1 with padding
        (2, 2, 5, 6, 3, 2, 3, 1, 2),   // rectangular kernel, padding wider than the kernel reach
        (1, 1, 1, 1, 2, 3, 3, 1, 1),   // kernel only fits through padding
        // 3x3 stride 1 with >= 8 channels in and out: the Winograd path
        (3, 8, 6, 6, 8, 3, 3, 1, 1),
        (2, 9, 5, 7, 10, 3, 3, 1, 1),  // odd output: the last tile row and column are cut
        (2, 8, 7, 6, 8, 3, 3, 1, 0),
        (1, 8, 4, 5, 9, 3, 3, 1, 2),
        (2, 8, 3, 5, 8, 3, 3, 1, 0),   // a single output row: no Winograd, im2col instead
        (1, 8, 5, 35, 8, 3, 3, 1, 1),  // Winograd rows of 18 tiles: two 16-lane chunks
        (1, 8, 4, 32, 8, 3, 3, 1, 1),  // 16 tiles a row: the last column pair starts a new chunk
        (2, 8, 14, 14, 8, 3, 3, 1, 1), // rows of 14 (the U-Net's middle level): copied as two 8-float pieces
        (1, 8, 6, 11, 8, 3, 3, 1, 0),  // input rows of 11, output rows of 9
        (2, 3, 9, 40, 4, 3, 3, 2, 1),  // stride 2 with outputs 16+ wide (vector path)
        (1, 2, 8, 37, 3, 2, 2, 2, 0),  // stride 2, even kernel, odd width
        // stride 1 with one or two output channels: the direct path
        (2, 5, 7, 6, 1, 3, 3, 1, 1),
        (1, 3, 9, 40, 2, 3, 3, 1, 1),  // padded rows of 42: 32-position blocks span rows
        (2, 2, 5, 6, 1, 2, 3, 1, 2),   // rectangular kernel, padding wider than the kernel reach
        (2, 4, 6, 5, 2, 5, 5, 1, 0),   // 5x5, no padding: a 2x1 output
        (1, 1, 1, 1, 1, 3, 3, 1, 1),   // kernel only fits through padding
    ]

    func testForwardMatchesDirectConvolution() throws {
        for (k, t) in cases.enumerated() {
            let (n, c, h, w, o, kh, kw, s, p) = t
            let x = randn([n, c, h, w], seed: UInt64(10 + k)), wt = randn([o, c, kh, kw], seed: UInt64(40 + k))
            for b in [nil, randn([o], seed: UInt64(70 + k))] {
                let y = try x.conv2d(weight: wt, bias: b, stride: s, padding: p)
                let ref = naiveConv(x, wt, b, stride: s, padding: p)
                XCTAssertEqual(y.shape, [n, o, (h + 2 * p - kh) / s + 1, (w + 2 * p - kw) / s + 1], "case \(t)")
                XCTAssertEqual(y.count, ref.count)
                for i in 0..<min(y.count, ref.count) where abs(Double(y.scalars[i]) - ref[i]) > 1e-4 * (1 + abs(ref[i])) {
                    XCTFail("case \(t) bias \(b != nil): y[\(i)] = \(y.scalars[i]), direct \(ref[i])"); break
                }
            }
        }
    }

    func testGradients() throws {
        for (k, t) in cases.enumerated() {
            let (n, c, h, w, o, kh, kw, s, p) = t
            try gradCheck("conv2d \(t) bias", [randn([n, c, h, w], seed: UInt64(10 + k)), randn([o, c, kh, kw], seed: UInt64(40 + k), scale: 0.5),
                                               randn([o], seed: UInt64(70 + k))]) {
                try $0[0].conv2d(weight: $0[1], bias: $0[2], stride: s, padding: p)
            }
            try gradCheck("conv2d \(t)", [randn([n, c, h, w], seed: UInt64(10 + k)), randn([o, c, kh, kw], seed: UInt64(40 + k), scale: 0.5)]) {
                try $0[0].conv2d(weight: $0[1], bias: nil, stride: s, padding: p)
            }
        }
    }

    /// Batches large enough to split over threads, against a batch-1 evaluation image by image.
    func checkBatchMatchesPerImage(_ shape: [Int], outChannels o: Int, padding: Int) throws {
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        let x = randn(shape, seed: 3), wt = randn([o, c, 3, 3], seed: 4, scale: 0.2), b = randn([o], seed: 5)
        x.requiresGrad = true; wt.requiresGrad = true; b.requiresGrad = true
        let y = try x.conv2d(weight: wt, bias: b, padding: padding)
        let r = randn(y.shape, seed: 6)
        try (y * r).sum().backward()
        let gw = wt.grad!.scalars, gb = b.grad!.scalars, gx = x.grad!.scalars
        var sw = [Double](repeating: 0, count: wt.count), sb = [Double](repeating: 0, count: o)
        let img = c * h * w
        for i in 0..<n {
            let xi = Tensor(Array(x.scalars[i * img..<(i + 1) * img]), shape: [1, c, h, w], requiresGrad: true)
            wt.grad = nil; b.grad = nil
            let yi = try xi.conv2d(weight: wt, bias: b, padding: padding)
            let ri = Tensor(Array(r.scalars[i * yi.count..<(i + 1) * yi.count]), shape: yi.shape)
            let ys = y.scalars, yis = yi.scalars
            for j in 0..<yi.count where abs(yis[j] - ys[i * yi.count + j]) > 1e-4 {
                XCTFail("\(shape) image \(i): y[\(j)] \(yis[j]) vs batch \(ys[i * yi.count + j])"); break
            }
            try (yi * ri).sum().backward()
            let gws = wt.grad!.scalars, gbs = b.grad!.scalars, gxs = xi.grad!.scalars
            for j in 0..<wt.count { sw[j] += Double(gws[j]) }
            for j in 0..<o { sb[j] += Double(gbs[j]) }
            for j in 0..<img where abs(gxs[j] - gx[i * img + j]) > 1e-4 {
                XCTFail("\(shape) image \(i): dx[\(j)] \(gxs[j]) vs batch \(gx[i * img + j])"); break
            }
        }
        for j in 0..<wt.count where abs(Double(gw[j]) - sw[j]) > 1e-3 * (1 + abs(sw[j])) {
            XCTFail("\(shape): dW[\(j)] \(gw[j]) vs per-image sum \(sw[j])"); break
        }
        for j in 0..<o { XCTAssertEqual(Double(gb[j]), sb[j], accuracy: 1e-3 * (1 + abs(sb[j]))) }
    }

    func testThreadedBatchMatchesPerImage() throws {
        try checkBatchMatchesPerImage([5, 3, 9, 9], outChannels: 4, padding: 1)     // im2col
        try checkBatchMatchesPerImage([5, 6, 9, 9], outChannels: 1, padding: 1)     // direct
        try checkBatchMatchesPerImage([3, 32, 20, 20], outChannels: 32, padding: 1) // Winograd, blocks spanning images
    }

    /// A single image large enough that the Winograd forward splits its tile rows over threads
    /// (and its blocks end mid-image), against the direct loop.
    func testWinogradSplitImageMatchesDirect() throws {
        let x = randn([1, 32, 48, 47], seed: 8), w = randn([32, 32, 3, 3], seed: 9, scale: 0.2), b = randn([32], seed: 10)
        let y = try x.conv2d(weight: w, bias: b, padding: 1)
        let ref = naiveConv(x, w, b, stride: 1, padding: 1)
        for i in 0..<y.count where abs(Double(y.scalars[i]) - ref[i]) > 1e-4 * (1 + abs(ref[i])) {
            XCTFail("y[\(i)] = \(y.scalars[i]), direct \(ref[i])"); break
        }
    }

    /// Gradients through Winograd blocks that span several images.
    func testWinogradGradientsAcrossImages() throws {
        try gradCheck("conv2d winograd blocks", [randn([3, 32, 20, 20], seed: 11), randn([32, 32, 3, 3], seed: 12, scale: 0.2),
                                                 randn([32], seed: 13)]) {
            try $0[0].conv2d(weight: $0[1], bias: $0[2], padding: 1)
        }
    }

    func testOnlyRequestedGradients() throws {
        let x = randn([2, 3, 6, 6], seed: 1), w = randn([4, 3, 3, 3], seed: 2)
        w.requiresGrad = true
        try x.conv2d(weight: w, bias: nil, padding: 1).sum().backward()
        XCTAssertNil(x.grad)
        XCTAssertEqual(w.grad?.shape, [4, 3, 3, 3])
    }

    func testErrorsNameOpAndShapes() {
        let x = randn([2, 3, 5, 5])
        XCTAssertThrowsError(try x.conv2d(weight: randn([4, 2, 3, 3]), bias: nil)) { e in
            XCTAssertEqual("\(e)", "conv2d: input [2, 3, 5, 5] has 3 channels but weight [4, 2, 3, 3] expects 2")
        }
        XCTAssertThrowsError(try x.conv2d(weight: randn([4, 3, 7, 7]), bias: nil, padding: 0)) { e in
            XCTAssertEqual("\(e)", "conv2d: kernel 7x7 of weight [4, 3, 7, 7] does not fit the input [2, 3, 5, 5] padded to 5x5")
        }
        XCTAssertThrowsError(try randn([3, 5, 5]).conv2d(weight: randn([4, 3, 3, 3]), bias: nil)) { e in
            XCTAssertEqual("\(e)", "conv2d: input must have shape [N, C, H, W], got [3, 5, 5]")
        }
        XCTAssertThrowsError(try x.conv2d(weight: randn([4, 3, 3]), bias: nil)) { e in
            XCTAssertEqual("\(e)", "conv2d: weight must have shape [O, C, kh, kw], got [4, 3, 3]")
        }
        XCTAssertThrowsError(try x.conv2d(weight: randn([4, 3, 3, 3]), bias: randn([3]))) { e in
            XCTAssertEqual("\(e)", "conv2d: bias must have shape [4] for weight [4, 3, 3, 3], got [3]")
        }
        XCTAssertThrowsError(try x.conv2d(weight: randn([4, 3, 3, 3]), bias: nil, stride: 0)) { e in
            XCTAssertTrue("\(e)".hasPrefix("conv2d: stride must be >= 1"), "\(e)")
        }
    }
}
