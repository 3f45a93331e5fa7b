import Foundation
import Autograd
import Models
import TensorCore

/// The fixed operator that makes a control image from an image; the same operator scores a
/// generated image's fidelity to its control. Images are [N, C, H, W] in [-1, 1]; controls are
/// [N, 1, H, W] with values 0 or 1. The operator is stored (as JSON) in the ControlNet file.
public struct ControlOperator: Codable, Equatable, CustomStringConvertible, Sendable {
    public enum Kind: String, Codable, CaseIterable, Sendable {
        /// Sobel gradient magnitude of the intensity (x + 1) / 2 (channel mean, borders
        /// replicated), 1 where it exceeds `threshold`.
        case sobel
        /// Intensity above `threshold`, averaged over `factor` x `factor` blocks, 1 where at least
        /// half the block is set; each block's value fills the block at full resolution.
        case silhouette
    }

    public var kind: Kind
    public var threshold: Float
    /// silhouette: the downsampling factor (H and W must be multiples of it).
    public var factor: Int

    public init(kind: Kind, threshold: Float, factor: Int) {
        self.kind = kind; self.threshold = threshold; self.factor = factor
    }

    public var description: String {
        kind == .sobel ? "sobel edges > \(threshold)" : "silhouette (intensity > \(threshold), \(factor)x\(factor) blocks)"
    }

    public func json() -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = .sortedKeys
        return String(decoding: (try? enc.encode(self)) ?? Data(), as: UTF8.self)
    }

    public static func fromJSON(_ s: String, source: String) throws -> ControlOperator {
        guard let op = try? JSONDecoder().decode(ControlOperator.self, from: Data(s.utf8)) else {
            throw ModelError("\(source): not a control operator (\(s.prefix(80)))")
        }
        try op.validate(source: source)
        return op
    }

    public func validate(source: String) throws {
        guard threshold.isFinite else { throw ModelError("\(source): threshold \(threshold) is not finite") }
        guard kind == .sobel || (factor >= 1 && factor <= 64) else {
            throw ModelError("\(source): silhouette factor \(factor) must be in 1...64")
        }
    }

    /// The control images of `images` [N, C, H, W].
    public func callAsFunction(_ images: Tensor) throws -> Tensor {
        guard images.rank == 4 else {
            throw ShapeError(op: "control operator", "images must be [N, C, H, W], got \(images.shape)")
        }
        let n = images.shape[0], c = images.shape[1], h = images.shape[2], w = images.shape[3]
        if kind == .silhouette && (h % factor != 0 || w % factor != 0) {
            throw ShapeError(op: "control operator", "silhouette factor \(factor) does not divide the image size \(h)x\(w)")
        }
        let out = Storage(zeros: n * h * w)
        var u = [Float](repeating: 0, count: h * w)
        for i in 0..<n {
            // Intensity in [0, 1]: the channel mean of (x + 1) / 2.
            for p in 0..<(h * w) {
                var s: Float = 0
                for k in 0..<c { s += images.storage.ptr[(i * c + k) * h * w + p] }
                u[p] = (s / Float(c) + 1) / 2
            }
            let o = out.ptr + i * h * w
            switch kind {
            case .sobel: sobel(u, h, w, o)
            case .silhouette: silhouette(u, h, w, o)
            }
        }
        return Tensor(shape: [n, 1, h, w], storage: out)
    }

    func sobel(_ u: [Float], _ h: Int, _ w: Int, _ o: UnsafeMutablePointer<Float>) {
        func at(_ y: Int, _ x: Int) -> Float { u[min(max(y, 0), h - 1) * w + min(max(x, 0), w - 1)] }
        for y in 0..<h {
            for x in 0..<w {
                let gx = (at(y - 1, x + 1) + 2 * at(y, x + 1) + at(y + 1, x + 1)) - (at(y - 1, x - 1) + 2 * at(y, x - 1) + at(y + 1, x - 1))
                let gy = (at(y + 1, x - 1) + 2 * at(y + 1, x) + at(y + 1, x + 1)) - (at(y - 1, x - 1) + 2 * at(y - 1, x) + at(y - 1, x + 1))
                o[y * w + x] = (gx * gx + gy * gy).squareRoot() > threshold ? 1 : 0
            }
        }
    }

    func silhouette(_ u: [Float], _ h: Int, _ w: Int, _ o: UnsafeMutablePointer<Float>) {
        let f = factor
        for by in stride(from: 0, to: h, by: f) {
            for bx in stride(from: 0, to: w, by: f) {
                var set = 0
                for y in by..<(by + f) { for x in bx..<(bx + f) where u[y * w + x] > threshold { set += 1 } }
                let v: Float = 2 * set >= f * f ? 1 : 0
                for y in by..<(by + f) { for x in bx..<(bx + f) { o[y * w + x] = v } }
            }
        }
    }
}

/// How well images follow their controls: the operator re-applied to `images` against
/// `controls` (both [N, 1, H, W] of 0/1). MSE is the share of pixels that disagree; IoU is
/// |A and B| / |A or B| per image (1 when both are empty), averaged over images.
public func controlFidelity(_ images: Tensor, controls: Tensor, op: ControlOperator) throws -> (mse: Double, iou: Double) {
    let made = try op(images)
    guard made.shape == controls.shape else {
        throw ShapeError(op: "control fidelity", "controls of shape \(controls.shape) for images of shape \(images.shape)")
    }
    let n = made.shape[0], size = made.count / max(n, 1)
    var sq = 0.0, iou = 0.0
    for i in 0..<n {
        var inter = 0, union = 0
        for p in (i * size)..<((i + 1) * size) {
            let a = made.storage.ptr[p], b = controls.storage.ptr[p]
            sq += Double((a - b) * (a - b))
            if a > 0.5 && b > 0.5 { inter += 1 }
            if a > 0.5 || b > 0.5 { union += 1 }
        }
        iou += union == 0 ? 1 : Double(inter) / Double(union)
    }
    return (sq / Double(max(made.count, 1)), iou / Double(max(n, 1)))
}
