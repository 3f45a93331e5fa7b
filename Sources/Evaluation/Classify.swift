import Foundation
import Autograd
import Datasets
import Models
import TensorCore

/// Accuracy of a classifier on a labelled dataset, in batches, without gradients.
public func classifierAccuracy(_ c: any ImageClassifier, images: Tensor, labels: [Int], batchSize: Int = 500) throws -> Double {
    let preds = try classify(c, images: images, batchSize: batchSize)
    return Double(zip(preds, labels).filter { $0 == $1 }.count) / Double(max(1, labels.count))
}

/// Arg-max class of every image.
public func classify(_ c: any ImageClassifier, images: Tensor, batchSize: Int = 500) throws -> [Int] {
    try classify(c, features: classifierFeatures(c, images: images, batchSize: batchSize))
}

/// Arg-max class from features already computed by `classifierFeatures` (scoring needs both, so
/// the network runs once).
public func classify(_ c: any ImageClassifier, features: Tensor) throws -> [Int] {
    let logits = try noGrad { try c.logits(features: features) }
    let n = logits.shape[0], k = logits.shape[1]
    return (0..<n).map { i in
        var best = 0
        for j in 1..<k where logits.storage.ptr[i * k + j] > logits.storage.ptr[i * k + best] { best = j }
        return best
    }
}

/// Features of the evaluator's penultimate layer for every image ([N, F]).
public func classifierFeatures(_ c: any ImageClassifier, images: Tensor, batchSize: Int = 500) throws -> Tensor {
    c.eval()
    defer { c.train() }
    return try noGrad {
        var parts: [Tensor] = []
        var lo = 0
        let n = images.shape[0]
        while lo < n {
            let hi = min(n, lo + batchSize)
            parts.append(try c.features(images.slice(axis: 0, range: lo..<hi)))
            lo = hi
        }
        return parts.count == 1 ? parts[0] : try Tensor.concat(parts, axis: 0)
    }
}

/// The classes an evaluator predicts: the dataset's labels, or for glyphs (whose captions are
/// Unicode names, no labels) the script, i.e. the caption's first word ("latin", "greek",
/// "hangul", ...): the most frequent ones in training plus "other".
public func evaluatorLabels(_ d: Dataset, classNames given: [String]? = nil) -> (labels: [Int], classNames: [String])? {
    if let l = d.labels { return (l, d.classNames) }
    guard d.name == "glyphs" else { return nil }
    let first = d.captions.map { String($0.split(separator: " ").first ?? "") }
    var names = given ?? []
    if given == nil {
        var counts: [String: Int] = [:]
        for w in first { counts[w, default: 0] += 1 }
        names = counts.filter { $0.value >= 100 }.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
            .prefix(15).map(\.key) + ["other"]
    }
    let index = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($0.element, $0.offset) })
    let other = names.count - 1
    return (first.map { index[$0] ?? other }, names)
}

/// The evaluator's class of each prompt (by the same rule), for prompt accuracy.
public func promptClasses(_ prompts: [String], evaluatorClassNames names: [String], dataset: Dataset) -> [Int]? {
    if dataset.labels != nil {
        var byCaption: [String: Int] = [:]
        for (k, caps) in dataset.classCaptions.enumerated() { for c in caps { byCaption[c] = k } }
        let out = prompts.map { byCaption[$0] }
        return out.contains(where: { $0 == nil }) ? nil : out.map { $0! }
    }
    let index = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($0.element, $0.offset) })
    return prompts.map { index[String($0.split(separator: " ").first ?? "")] ?? (names.count - 1) }
}
