import Foundation
import Formats
import TensorCore

/// Which part of a dataset to load. Every dataset has a fixed, documented train/test split so
/// that numbers from different runs compare; `all` is their union (train first, then test).
public enum Split: String, Sendable, CaseIterable, Codable {
    case train, test, all
}

/// The datasets the toolkit knows by name (config files use the raw values).
public enum DatasetName: String, Sendable, CaseIterable, Codable {
    case toy2d
    case digits
    case fashionMNIST = "fashion-mnist"
    case glyphs
}

/// Where the loaders look for their files and how the synthetic one is drawn. Defaults match a
/// Debian machine with `dataset-fashion-mnist` and `unifont` installed and this repository's
/// `datasets/` folder.
public struct DatasetOptions: Sendable {
    /// Points per split for `toy2d` (nil: 8,192 for train, 2,048 for test).
    public var toyCount: Int?
    public var toySeed: UInt64
    /// `digits.csv.gz` (nil: found by `Dataset.locateDigits()`).
    public var digitsPath: String?
    public var fashionDirectory: String
    public var unifontPath: String

    public init(toyCount: Int? = nil, toySeed: UInt64 = 0, digitsPath: String? = nil,
                fashionDirectory: String = Dataset.defaultFashionDirectory,
                unifontPath: String = Dataset.defaultUnifontPath) {
        self.toyCount = toyCount
        self.toySeed = toySeed
        self.digitsPath = digitsPath
        self.fashionDirectory = fashionDirectory
        self.unifontPath = unifontPath
    }
}

/// A batch gathered from a dataset: images [n, C, H, W] in [-1, 1] and one caption per item.
public struct DataBatch: @unchecked Sendable {
    public let images: Storage
    public let shape: [Int]
    public let captions: [String]
    /// Class index per item, nil when the dataset has no classes (glyphs).
    public let labels: [Int]?
}

/// An in-memory dataset: every item is an image in [-1, 1] (Float32, [N, C, H, W]) with a
/// caption and, where the dataset has classes, an integer label.
///
/// Shapes: toy2d [N, 2, 1, 1] (a 2-D point as two channels of a 1x1 image), digits [N, 1, 8, 8],
/// fashion-mnist [N, 1, 28, 28], glyphs [N, 1, 16, 16].
public struct Dataset: @unchecked Sendable {
    public let name: String
    public let split: Split
    /// Images, contiguous [count, C, H, W], values in [-1, 1].
    public let images: Storage
    /// [count, C, H, W].
    public let shape: [Int]
    /// Class index per item; nil when the dataset has no classes.
    public let labels: [Int]?
    public let captions: [String]
    /// Label -> class name; empty when the dataset has no classes.
    public let classNames: [String]
    /// Caption templates per class (already filled in), for prompting a model with a class at
    /// sampling/evaluation time; every item caption of class k is one of `classCaptions[k]`.
    public let classCaptions: [[String]]
    /// Each item's identity in its source: the row (digits), the index in the IDX file
    /// (fashion-mnist), the code point (glyphs), the draw index (toy2d).
    public let sourceIDs: [Int]

    public init(name: String, split: Split, images: Storage, shape: [Int], labels: [Int]?,
                captions: [String], classNames: [String], classCaptions: [[String]], sourceIDs: [Int]) throws {
        guard shape.count == 4, shape.allSatisfy({ $0 >= 0 }) else {
            throw DataError("dataset \(name): shape \(shape) is not [N, C, H, W]")
        }
        guard images.count == ShapeUtil.count(shape) else {
            throw DataError("dataset \(name): \(images.count) values do not fill shape \(shape)")
        }
        let n = shape[0]
        guard captions.count == n, sourceIDs.count == n, labels.map({ $0.count == n }) ?? true else {
            throw DataError("dataset \(name): \(n) images but \(captions.count) captions, "
                + "\(labels?.count ?? n) labels, \(sourceIDs.count) source ids")
        }
        self.name = name
        self.split = split
        self.images = images
        self.shape = shape
        self.labels = labels
        self.captions = captions
        self.classNames = classNames
        self.classCaptions = classCaptions
        self.sourceIDs = sourceIDs
    }

    public var count: Int { shape[0] }
    /// [C, H, W].
    public var itemShape: [Int] { Array(shape.dropFirst()) }
    /// Floats per item (C * H * W).
    public var itemSize: Int { shape[1] * shape[2] * shape[3] }

    /// Images and captions of the items at `indices` (in that order; repeats allowed).
    public func batch(indices: [Int]) throws -> DataBatch {
        let n = count
        if let bad = indices.first(where: { $0 < 0 || $0 >= n }) {
            throw DataError("dataset \(name) (\(split.rawValue)): index \(bad) out of range 0..<\(n)")
        }
        let size = itemSize
        let out = Storage(uninitializedCount: indices.count * size)
        let src = images.ptr, dst = out.ptr
        Parallel.items(indices.count, costPerItem: size) { i in
            (dst + i * size).update(from: src + indices[i] * size, count: size)
        }
        return DataBatch(images: out, shape: [indices.count] + itemShape,
                         captions: indices.map { captions[$0] },
                         labels: labels.map { l in indices.map { l[$0] } })
    }

    /// Items `range` in order.
    public func batch(_ range: Range<Int>) throws -> DataBatch { try batch(indices: Array(range)) }

    /// The first `n` items (all of them when `n >= count`), e.g. for quick runs.
    public func prefix(_ n: Int) throws -> Dataset {
        let k = max(0, min(n, count))
        if k == count { return self }
        let b = try batch(0..<k)
        return try Dataset(name: name, split: split, images: b.images, shape: b.shape, labels: b.labels,
                           captions: b.captions, classNames: classNames, classCaptions: classCaptions,
                           sourceIDs: Array(sourceIDs[0..<k]))
    }

    /// Loads a dataset by its config name ("toy2d", "digits", "fashion-mnist", "glyphs").
    public static func load(_ name: String, split: Split, options: DatasetOptions = DatasetOptions()) throws -> Dataset {
        guard let which = DatasetName(rawValue: name) else {
            let known = DatasetName.allCases.map(\.rawValue).joined(separator: ", ")
            throw DataError("unknown dataset '\(name)' (known: \(known))")
        }
        return try load(which, split: split, options: options)
    }

    public static func load(_ name: DatasetName, split: Split, options: DatasetOptions = DatasetOptions()) throws -> Dataset {
        switch name {
        case .toy2d:
            let n = options.toyCount ?? (split == .test ? 2048 : 8192)
            return try toy2d(split: split, count: n, seed: options.toySeed)
        case .digits:
            return try digits(split: split, path: options.digitsPath)
        case .fashionMNIST:
            return try fashionMNIST(split: split, directory: options.fashionDirectory)
        case .glyphs:
            return try glyphs(split: split, path: options.unifontPath)
        }
    }
}

/// Small deterministic helpers for choosing captions and splits. They must never change:
/// captions and held-out sets are part of what an experiment's numbers mean.
enum StableHash {
    /// SplitMix64 finaliser: a well-mixed 64-bit hash of an integer.
    @inline(__always)
    static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Which of `n` templates item `index` of source `salt` uses.
    static func pick(_ index: Int, salt: UInt64, among n: Int) -> Int {
        Int(mix(UInt64(truncatingIfNeeded: index) ^ (salt &* 0x2545_F491_4F6C_DD1D)) % UInt64(n))
    }

    /// FNV-1a 64 over UTF-8 bytes.
    static func fnv1a(_ s: String) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        return h
    }
}

/// "a" or "an" for an English noun phrase (enough for our fixed vocabularies).
func indefiniteArticle(_ phrase: String) -> String {
    guard let c = phrase.lowercased().first else { return "a" }
    return "aeiou".contains(c) ? "an" : "a"
}
