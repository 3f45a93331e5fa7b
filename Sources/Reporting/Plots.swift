import Foundation
import Autograd
import Formats
import TensorCore

/// 2-D ODE trajectories as a PNG: one polyline per item from its noise (gray dot) to its
/// sample (coloured by prompt). Crossing, curved paths are what reflow straightens.
public func trajectoryPlot(_ trajectory: [(t: Float, x: Tensor)], labels: [Int], size: Int = 384,
                           extent: Float = 2.2) throws -> PNGImage {
    guard let first = trajectory.first, first.x.rank == 4, first.x.shape[1] == 2 else {
        throw ShapeError(op: "trajectoryPlot", "needs 2-D items [N, 2, 1, 1], got \(trajectory.first?.x.shape ?? [])")
    }
    let n = first.x.shape[0]
    let palette: [(UInt8, UInt8, UInt8)] = [
        (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40),
        (148, 103, 189), (140, 86, 75), (227, 119, 194), (23, 190, 207),
    ]
    var px = [UInt8](repeating: 255, count: size * size * 3)
    let scale = Float(size - 1) / (2 * extent)
    func toPixel(_ x: Float, _ y: Float) -> (Int, Int) {
        (Int(((x + extent) * scale).rounded()), Int(((extent - y) * scale).rounded()))
    }
    func plot(_ x: Int, _ y: Int, _ c: (UInt8, UInt8, UInt8), alpha: Float) {
        guard x >= 0, x < size, y >= 0, y < size else { return }
        let o = (y * size + x) * 3
        px[o] = UInt8(Float(px[o]) * (1 - alpha) + Float(c.0) * alpha)
        px[o + 1] = UInt8(Float(px[o + 1]) * (1 - alpha) + Float(c.1) * alpha)
        px[o + 2] = UInt8(Float(px[o + 2]) * (1 - alpha) + Float(c.2) * alpha)
    }
    func line(_ a: (Int, Int), _ b: (Int, Int), _ c: (UInt8, UInt8, UInt8)) {
        let steps = max(abs(b.0 - a.0), abs(b.1 - a.1), 1)
        for s in 0...steps {
            let f = Float(s) / Float(steps)
            plot(Int((Float(a.0) + f * Float(b.0 - a.0)).rounded()), Int((Float(a.1) + f * Float(b.1 - a.1)).rounded()), c, alpha: 0.35)
        }
    }
    for i in 0..<n {
        let c = palette[labels.isEmpty ? 0 : labels[i] % palette.count]
        var prev: (Int, Int)? = nil
        for (_, x) in trajectory {
            let p = toPixel(x.storage.ptr[2 * i], x.storage.ptr[2 * i + 1])
            if let q = prev { line(q, p, c) }
            prev = p
        }
        let s = toPixel(first.x.storage.ptr[2 * i], first.x.storage.ptr[2 * i + 1])
        let e = prev!
        for dy in -1...1 { for dx in -1...1 { plot(s.0 + dx, s.1 + dy, (120, 120, 120), alpha: 1); plot(e.0 + dx, e.1 + dy, c, alpha: 1) } }
    }
    return try PNGImage(width: size, height: size, channels: 3, pixels: px)
}
