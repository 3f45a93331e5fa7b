import Formats
import TensorCore

extension Dataset {
    /// Captions of the eight toy2d components, counter-clockwise from the positive x axis
    /// (component k sits at angle k * 45 degrees).
    public static let toy2dComponentNames = [
        "right cluster", "upper right cluster", "top cluster", "upper left cluster",
        "left cluster", "lower left cluster", "bottom cluster", "lower right cluster",
    ]

    /// A 2-D mixture of eight Gaussians on a circle, each component captioned by its place
    /// ("upper left cluster") and labelled 0..<8. Points are stored as [N, 2, 1, 1] (x, y as two
    /// channels of a 1x1 image) so that every dataset is [N, C, H, W].
    ///
    /// Point i depends only on (seed, split, i): its component comes from Philox stream 2i and
    /// its offset from stream 2i + 1, with the test split on streams offset by 2^40. Values are
    /// clamped to [-1, 1]; with the defaults the circle edge is 5 standard deviations inside.
    public static func toy2d(split: Split, count: Int, seed: UInt64 = 0,
                             radius: Float = 0.65, std: Float = 0.07) throws -> Dataset {
        guard count >= 0 else { throw DataError("toy2d: count must be >= 0, got \(count)") }
        if split == .all {
            return try concatenate(toy2d(split: .train, count: count, seed: seed, radius: radius, std: std),
                                   toy2d(split: .test, count: count, seed: seed, radius: radius, std: std))
        }
        let k = toy2dComponentNames.count
        let philox = Philox(seed: seed)
        let base: UInt64 = split == .test ? 1 << 40 : 0
        let out = Storage(uninitializedCount: count * 2)
        var labels = [Int](repeating: 0, count: count)
        labels.withUnsafeMutableBufferPointer { lab in
            let p = out.ptr
            for i in 0..<count {
                let stream = base + UInt64(i) * 2
                var u: Float = 0, z: (Float, Float) = (0, 0)
                philox.fillUniform(&u, count: 1, stream: stream)
                withUnsafeMutablePointer(to: &z) {
                    $0.withMemoryRebound(to: Float.self, capacity: 2) { philox.fillNormal($0, count: 2, stream: stream + 1) }
                }
                let c = min(k - 1, Int(u * Float(k)))
                let angle = Float(c) * 2 * Float.pi / Float(k)
                p[2 * i] = max(-1, min(1, radius * cos(angle) + std * z.0))
                p[2 * i + 1] = max(-1, min(1, radius * sin(angle) + std * z.1))
                lab[i] = c
            }
        }
        return try Dataset(name: DatasetName.toy2d.rawValue, split: split, images: out, shape: [count, 2, 1, 1],
                           labels: labels, captions: labels.map { toy2dComponentNames[$0] },
                           classNames: toy2dComponentNames, classCaptions: toy2dComponentNames.map { [$0] },
                           sourceIDs: Array(0..<count))
    }

    /// Train followed by test, for `Split.all`.
    static func concatenate(_ a: Dataset, _ b: Dataset) throws -> Dataset {
        let out = Storage(uninitializedCount: a.images.count + b.images.count)
        out.ptr.update(from: a.images.ptr, count: a.images.count)
        (out.ptr + a.images.count).update(from: b.images.ptr, count: b.images.count)
        var labels: [Int]? = nil
        if let la = a.labels, let lb = b.labels { labels = la + lb }
        return try Dataset(name: a.name, split: .all, images: out, shape: [a.count + b.count] + a.itemShape,
                           labels: labels, captions: a.captions + b.captions, classNames: a.classNames,
                           classCaptions: a.classCaptions, sourceIDs: a.sourceIDs + b.sourceIDs)
    }
}

#if canImport(Glibc)
import Glibc
#endif
