import Autograd
import Datasets
import Models
import TensorCore
import TripletStore

/// What a LoRA learns from its base: the base's own objective, picked from the checkpoint or named.
public enum LoRAObjective: String, CaseIterable, Sendable {
    /// distill for a student (its metadata has student_steps), flow otherwise.
    case auto
    /// The rectified-flow loss: on (independent noise, dataset item) as the teacher was trained,
    /// or on the coupled pairs given (--input), as a 2-RF was.
    case flow
    /// The student's loss on (noise, image) pairs: x0 + v(x0, 0) against the pair's image.
    case distill
}

/// A change made to training images (what a LoRA learns: `lora.transform`).
public enum ItemTransform: String, CaseIterable, Sendable {
    case none
    /// x -> -x: the image's values mirrored in [-1, 1] (white strokes on black become black on white).
    case invert

    func apply(_ src: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<Float>, count: Int) {
        switch self {
        case .none: dst.update(from: src, count: count)
        case .invert: for k in 0..<count { dst[k] = -src[k] }
        }
    }
}

extension Dataset {
    /// The items of `keep` classes (all when empty), with `transform` applied to the items of
    /// `classes` (every kept item when empty). `key` prefixes the config keys errors name.
    public func transformed(keeping keep: [Int], transform: ItemTransform, classes: [Int], key: String) throws -> Dataset {
        if keep.isEmpty && transform == .none { return self }
        guard let labels else {
            throw ModelError("\(key).classes / \(key).transform_classes need a dataset with classes; \(name) has none")
        }
        for (k, list) in [("classes", keep), ("transform_classes", classes)] {
            if let bad = list.first(where: { $0 >= classNames.count }) {
                throw ModelError("\(key).\(k): class \(bad) does not exist in \(name) (classes 0..<\(classNames.count))")
            }
        }
        let rows = (0..<count).filter { keep.isEmpty || keep.contains(labels[$0]) }
        guard !rows.isEmpty else { throw ModelError("\(key).classes \(keep): no items of \(name) belong to them") }
        let size = itemSize
        let out = Storage(uninitializedCount: rows.count * size)
        for (j, i) in rows.enumerated() {
            let change = classes.isEmpty || classes.contains(labels[i])
            (change ? transform : .none).apply(images.ptr + i * size, out.ptr + j * size, count: size)
        }
        return try Dataset(name: name, split: split, images: out, shape: [rows.count] + itemShape,
                           labels: rows.map { labels[$0] }, captions: rows.map { captions[$0] }, classNames: classNames,
                           classCaptions: classCaptions, sourceIDs: rows.map { sourceIDs[$0] })
    }
}

/// Pairs whose images are transformed when their caption is one of the transform classes'
/// (the distill objective's version of `Dataset.transformed`): a student learns the change from
/// the same pairs it was distilled on.
public final class TransformedPairs: TrainingSource {
    let base: TrainingSource
    let transform: ItemTransform
    let captions: Set<String>

    public init(_ base: TrainingSource, transform: ItemTransform, classes: [Int], dataset d: Dataset, key: String) throws {
        self.base = base
        self.transform = transform
        if let bad = classes.first(where: { $0 >= d.classCaptions.count }) {
            throw ModelError("\(key).transform_classes: class \(bad) does not exist in \(d.name) (classes 0..<\(d.classCaptions.count))")
        }
        captions = Set((classes.isEmpty ? Array(d.classCaptions.indices) : classes).flatMap { d.classCaptions[$0] })
    }

    public var itemShape: [Int] { base.itemShape }

    public func batch(step: Int, size: Int, slice: Range<Int>) throws -> (x0: Tensor, x1: Tensor, captions: [String]) {
        let (x0, x1, c) = try base.batch(step: step, size: size, slice: slice)
        let item = x1.count / max(1, c.count)
        let out = Storage(uninitializedCount: x1.count)
        for (j, caption) in c.enumerated() {
            (captions.contains(caption) ? transform : .none).apply(x1.storage.ptr + j * item, out.ptr + j * item, count: item)
        }
        return (x0, Tensor(shape: x1.shape, storage: out), c)
    }
}

/// Triplet files as a training source for `model` (a stage starting from `base`), their images
/// transformed for the captions of `transformClasses`. `classes` (a dataset subset) must be empty:
/// pairs are not dataset items.
public func pairsSource(_ paths: [String], seed: UInt64, for model: FlowModel, base: String, classes: [Int],
                        transform: ItemTransform, transformClasses: [Int], dataset: Dataset, key: String) throws -> TrainingSource {
    guard classes.isEmpty else {
        throw ModelError("\(key).classes picks dataset items, and this stage learns from pairs (\(paths.joined(separator: ", "))): set \(key).classes=[] (\(key).transform and \(key).transform_classes do apply, to the pairs' images)")
    }
    let triplets = try TripletSource(paths: paths, seed: seed)
    guard triplets.itemShape == model.spec.itemShape else {
        throw ModelError("triplet file \(paths[0]) holds items of shape \(triplets.itemShape), but \(base) makes \(model.spec.itemShape)")
    }
    return transform == .none ? triplets : try TransformedPairs(triplets, transform: transform, classes: transformClasses, dataset: dataset, key: key)
}
