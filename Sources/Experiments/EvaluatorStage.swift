import Foundation
import Autograd
import Data
import Models
import NN
import TensorCore

/// Settings of an evaluator's training; fixed per dataset so the committed weights are
/// reproducible by the command recorded in their metadata.
public struct EvaluatorSettings {
    public var steps: Int, batchSize: Int, lr: Double, seed: UInt64, width: Int
    public static func forDataset(_ name: String, trainCount: Int) -> EvaluatorSettings {
        switch name {
        case "fashion-mnist": return EvaluatorSettings(steps: 3000, batchSize: 128, lr: 2e-3, seed: 1, width: 32)
        case "glyphs": return EvaluatorSettings(steps: 3000, batchSize: 128, lr: 2e-3, seed: 1, width: 32)
        default: return EvaluatorSettings(steps: 800, batchSize: 128, lr: 2e-3, seed: 1, width: 32)
        }
    }
}

/// Accuracy of a classifier on a labelled dataset, in batches, without gradients.
public func classifierAccuracy(_ c: Classifier, images: Tensor, labels: [Int], batchSize: Int = 500) throws -> Double {
    let preds = try classify(c, images: images, batchSize: batchSize)
    return Double(zip(preds, labels).filter { $0 == $1 }.count) / Double(max(1, labels.count))
}

/// Arg-max class of every image.
public func classify(_ c: Classifier, images: Tensor, batchSize: Int = 500) throws -> [Int] {
    c.eval()
    defer { c.train() }
    return try noGrad {
        var out: [Int] = []
        let n = images.shape[0]
        var lo = 0
        while lo < n {
            let hi = min(n, lo + batchSize)
            let logits = try c(images.slice(axis: 0, range: lo..<hi))
            let k = logits.shape[1]
            for i in 0..<(hi - lo) {
                var best = 0
                for j in 1..<k where logits.storage.ptr[i * k + j] > logits.storage.ptr[i * k + best] { best = j }
                out.append(best)
            }
            lo = hi
        }
        return out
    }
}

/// Features of the evaluator's penultimate layer for every image ([N, F]).
public func classifierFeatures(_ c: Classifier, images: Tensor, batchSize: Int = 500) throws -> Tensor {
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

extension Pipeline {
    /// Where a dataset's evaluator lives (committed with the repository).
    public static func evaluatorURL(dataset: String, root: String = "checkpoints/evaluators") -> URL {
        URL(fileURLWithPath: "\(root)/\(dataset).safetensors")
    }

    /// Trains the dataset's evaluator classifier on the real training split and writes it with
    /// its test accuracy in the metadata. Returns (path, test accuracy).
    @discardableResult
    public func trainEvaluator(output: URL? = nil, command: String) throws -> (URL, Double) {
        let train = try loadDataset(.train), test = try loadDataset(.test)
        guard let (labels, classNames) = evaluatorLabels(train), let (testLabels, _) = evaluatorLabels(test, classNames: classNames) else {
            throw ModelError("dataset \(train.name) has no class labels, so it has no evaluator")
        }
        let classes = classNames.count
        let s = EvaluatorSettings.forDataset(train.name, trainCount: train.count)
        let model = Classifier(inputShape: train.itemShape, classes: classes, width: s.width, seed: s.seed)
        let opt = AdamW(model.namedParameters(), lr: s.lr, weightDecay: 1e-4)
        let schedule = LRSchedule(base: s.lr, warmupSteps: 100, decay: .cosine(totalSteps: s.steps, floor: s.lr * 0.05))
        var sampler = EpochSampler(count: train.count, seed: s.seed)
        let progress = Progress(total: s.steps, label: "evaluator", output: quiet ? { _ in } : nil)
        for step in 0..<s.steps {
            let idx = sampler.indices(step: step, size: s.batchSize)
            let b = try train.batch(indices: idx)
            opt.lr = schedule.lr(at: step)
            let loss = try Classifier.crossEntropy(model(Tensor(shape: b.shape, storage: b.images)), labels: idx.map { labels[$0] })
            loss.backward()
            opt.step()
            opt.zeroGrad()
            progress.update(step: step + 1, values: [("loss", Double(loss.item))])
        }
        progress.finish()
        let testImages = Tensor(shape: test.shape, storage: test.images)
        let acc = try classifierAccuracy(model, images: testImages, labels: testLabels)
        let url = output ?? Pipeline.evaluatorURL(dataset: train.name)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let meta = model.metadata(extra: [
            "dataset": train.name, "class_names": classNames.joined(separator: "|"),
            "test_accuracy": String(format: "%.4f", acc), "test_items": String(test.count),
            "train_items": String(train.count), "steps": String(s.steps), "seed": String(s.seed),
            "command": command, "role": "evaluator",
        ])
        try saveCheckpoint(model, metadata: meta, to: url)
        return (url, acc)
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
