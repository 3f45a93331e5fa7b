import Foundation
import Autograd
import Datasets
import Flow
import Generation
import Models
import TensorCore

/// Prompts for evaluation: class-balanced, caption templates cycling, from the test split.
public func evaluationPrompts(_ test: Dataset, count: Int, evaluatorClassNames: [String] = []) -> (prompts: [String], classes: [Int]) {
    let k = test.classCaptions.count
    guard k > 0 else {
        // No caption templates (glyphs): test captions in order, classes by the evaluator's rule.
        let prompts = (0..<count).map { test.captions[($0 * 7919) % test.count] }
        return (prompts, promptClasses(prompts, evaluatorClassNames: evaluatorClassNames, dataset: test) ?? [])
    }
    var prompts: [String] = [], classes: [Int] = []
    for i in 0..<count {
        let c = i % k
        let caps = test.classCaptions[c]
        prompts.append(caps[(i / k) % caps.count]); classes.append(c)
    }
    return (prompts, classes)
}

/// Where a dataset's evaluator lives (committed with the repository): `<dataset>.safetensors`
/// for the first architecture, `<dataset>.<arch>.safetensors` for the others.
public func defaultEvaluatorURL(dataset: String, arch: EvaluatorArch = .conv3, root: String = "checkpoints/evaluators") -> URL {
    URL(fileURLWithPath: arch == .conv3 ? "\(root)/\(dataset).safetensors" : "\(root)/\(dataset).\(arch.rawValue).safetensors")
}

/// What every evaluation shares: the evaluators, the test split's reference statistics, the
/// class-balanced prompts (and their classes), the training images the floor row is drawn
/// from, and a cache of loaded checkpoints.
public final class EvalContext {
    public let reference: Reference
    public let prompts: [String]
    public let classes: [Int]
    public let dataset: String
    /// Each evaluator's test accuracy as "95.0%" (empty when its metadata has none).
    public let evaluatorAccuracy: String
    public let secondEvaluatorAccuracy: String
    let train: Dataset
    /// Training labels under the evaluator's classes (nil: the dataset has none).
    let trainLabels: [Int]?
    private var loaded: [String: (FlowModel, [String: String])] = [:]

    /// `evaluator` nil: the dataset's committed one (`defaultEvaluatorURL`). `secondEvaluator` nil:
    /// the committed vgg one when there is one for these images (none for toy2d's points).
    public init(test: Dataset, train: Dataset, evaluator path: String?, secondEvaluator second: String?, samples: Int) throws {
        let evURL = path.map { URL(fileURLWithPath: $0) } ?? defaultEvaluatorURL(dataset: test.name)
        guard FileManager.default.fileExists(atPath: evURL.path) else {
            throw ModelError("evaluator \(evURL.path) not found; train it with: reflow-train --config <config> --stage evaluator")
        }
        let (evaluator, evMeta) = try loadClassifier(from: evURL)
        var secondNet: (any ImageClassifier)? = nil
        var secondMeta: [String: String] = [:]
        let secondURL = second.map { URL(fileURLWithPath: $0) } ?? defaultEvaluatorURL(dataset: test.name, arch: .vgg)
        if FileManager.default.fileExists(atPath: secondURL.path) {
            (secondNet, secondMeta) = try loadClassifier(from: secondURL)
        } else if second != nil {
            throw ModelError("second evaluator \(secondURL.path) not found; train it with: reflow-train --config <config> --stage evaluator --arch vgg")
        }
        reference = try Reference(test: test, evaluator: evaluator, second: secondNet)
        let classNames = (evMeta["class_names"] ?? "").split(separator: "|").map(String.init)
        (prompts, classes) = evaluationPrompts(test, count: samples, evaluatorClassNames: classNames)
        dataset = test.name
        func accuracy(_ m: [String: String]) -> String {
            m["test_accuracy"].flatMap(Double.init).map { String(format: "%.1f%%", $0 * 100) } ?? ""
        }
        evaluatorAccuracy = accuracy(evMeta)
        secondEvaluatorAccuracy = accuracy(secondMeta)
        self.train = train
        trainLabels = evaluatorLabels(train, classNames: classNames.isEmpty ? nil : classNames)?.labels
    }

    /// A checkpoint and its metadata, loaded once however many rows use it.
    public func load(_ path: String) throws -> (FlowModel, [String: String]) {
        if let m = loaded[path] { return m }
        guard FileManager.default.fileExists(atPath: path) else { throw ModelError("checkpoint \(path) not found") }
        let m = try FlowModel.load(from: URL(fileURLWithPath: path))
        loaded[path] = m
        return m
    }

    /// A table with the context's dataset and evaluators filled in.
    public func emptyTable(samples: Int, seeds: [UInt64]) -> ChainTable {
        var t = ChainTable(dataset: dataset, samples: samples, seeds: seeds)
        t.evaluatorAccuracy = evaluatorAccuracy
        t.secondEvaluatorAccuracy = reference.second == nil ? nil : secondEvaluatorAccuracy
        return t
    }

    /// The floor: real training images scored exactly like samples (same count, prompts' classes,
    /// seeds and evaluators). For seed s, image i is a training image of prompt i's class, taken
    /// in a per-class order permuted by RNG(s); without classes, any training image. (Training
    /// images rather than a slice of the test split, so that the test split stays whole as the
    /// reference: the floor is what a model that reproduced its training distribution scores.)
    public func floorRow(seeds: [UInt64]) throws -> ChainRow {
        var row = ChainRow(model: ChainRow.dataLabel, steps: 0, nfe: 0, guidance: 0)
        var byClass: [Int: [Int]] = [:]
        if let labels = trainLabels { for (i, l) in labels.enumerated() { byClass[l, default: []].append(i) } }
        byClass[-1] = Array(0..<train.count)  // for prompts without a class
        for seed in seeds {
            // Without replacement within a class while its pool lasts: duplicates would shrink
            // the k-NN balls and understate the floor's recall.
            var rng = RNG(seed: seed &+ 0xF1_00A5, counter: 0)
            var order: [Int: [Int]] = [:], used: [Int: Int] = [:]
            for c in byClass.keys.sorted() { order[c] = rng.permutation(byClass[c]!.count).map { byClass[c]![$0] } }
            let idx: [Int] = prompts.indices.map { i in
                let c = !classes.isEmpty && byClass[classes[i]] != nil ? classes[i] : -1
                let k = used[c, default: 0]
                used[c] = k + 1
                return order[c]![k % order[c]!.count]
            }
            let b = try train.batch(indices: idx)
            row.add(try scoreImages(Tensor(shape: b.shape, storage: b.images), classes: classes, reference: reference,
                                    imagesPerSecond: nil, nfe: 0))
        }
        return row
    }
}

/// One untimed batch through `model`, so that a row's images/s does not include first-call costs
/// (buffer allocation, lazy setup) that the rows after it would not pay.
func warmUp(_ model: FlowModel, prompts: [String], guidance: Float, batchSize: Int) throws {
    let n = min(prompts.count, batchSize)
    guard n > 0 else { return }
    let x0 = itemNoise(seed: 0, first: 0, count: n, itemShape: model.spec.itemShape)
    _ = try generate(model, x0: x0, prompts: Array(prompts[0..<n]), solver: Euler(steps: 1), guidance: guidance, batchSize: batchSize)
}

/// Mean ± spread (half the range) of a list, formatted.
public func formatSpread(_ xs: [Double], digits: Int = 3, percent: Bool = false) -> String {
    guard !xs.isEmpty else { return "–" }
    let scale = percent ? 100.0 : 1.0
    let m = xs.reduce(0, +) / Double(xs.count) * scale
    let f = "%.\(digits)f"
    if xs.count == 1 { return String(format: f, m) + (percent ? "%" : "") }
    let half = (xs.max()! - xs.min()!) / 2 * scale
    return String(format: f, m) + " ± " + String(format: f, half) + (percent ? "%" : "")
}
