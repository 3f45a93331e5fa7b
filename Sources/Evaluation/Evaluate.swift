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

/// Where a dataset's evaluator lives (committed with the repository).
public func defaultEvaluatorURL(dataset: String, root: String = "checkpoints/evaluators") -> URL {
    URL(fileURLWithPath: "\(root)/\(dataset).safetensors")
}

/// What every evaluation shares: the evaluator, the test split's reference statistics, the
/// class-balanced prompts (and their classes), and a cache of loaded checkpoints.
public final class EvalContext {
    public let reference: Reference
    public let prompts: [String]
    public let classes: [Int]
    public let dataset: String
    /// The evaluator's test accuracy as "95.0%" (empty when its metadata has none).
    public let evaluatorAccuracy: String
    private var loaded: [String: (FlowModel, [String: String])] = [:]

    /// `evaluator` nil: the dataset's committed one (`defaultEvaluatorURL`).
    public init(test: Dataset, evaluator path: String?, samples: Int) throws {
        let evURL = path.map { URL(fileURLWithPath: $0) } ?? defaultEvaluatorURL(dataset: test.name)
        guard FileManager.default.fileExists(atPath: evURL.path) else {
            throw ModelError("evaluator \(evURL.path) not found; train it with: reflow-train --config <config> --stage evaluator")
        }
        let (evaluator, evMeta) = try Classifier.load(from: evURL)
        reference = try Reference(test: test, evaluator: evaluator)
        let classNames = (evMeta["class_names"] ?? "").split(separator: "|").map(String.init)
        (prompts, classes) = evaluationPrompts(test, count: samples, evaluatorClassNames: classNames)
        dataset = test.name
        evaluatorAccuracy = evMeta["test_accuracy"].flatMap(Double.init).map { String(format: "%.1f%%", $0 * 100) } ?? ""
    }

    /// A checkpoint and its metadata, loaded once however many rows use it.
    public func load(_ path: String) throws -> (FlowModel, [String: String]) {
        if let m = loaded[path] { return m }
        guard FileManager.default.fileExists(atPath: path) else { throw ModelError("checkpoint \(path) not found") }
        let m = try FlowModel.load(from: URL(fileURLWithPath: path))
        loaded[path] = m
        return m
    }
}

/// Reference statistics of the real test split: evaluator features and pixels.
public struct Reference {
    public let features: GaussianFit
    public let pixels: GaussianFit
    public let evaluator: Classifier
    public init(test: Dataset, evaluator: Classifier) throws {
        let imgs = Tensor(shape: test.shape, storage: test.images)
        features = try GaussianFit(classifierFeatures(evaluator, images: imgs))
        pixels = try GaussianFit(imgs.reshaped([test.count, -1]))
        self.evaluator = evaluator
    }
}

/// Generates `prompts.count` samples from (seed, i) noise with `solver` and scores them.
public func scoreSamples(_ model: FlowModel, solver: ODESolver, guidance: Float, prompts: [String], classes: [Int],
                         seed: UInt64, reference: Reference, batchSize: Int = 250,
                         noiseOffset: Int = 0) throws -> (accuracy: Double?, fdFeatures: Double, fdPixels: Double,
                                                           imagesPerSecond: Double, nfe: Int, images: Tensor) {
    let x0 = itemNoise(seed: seed, first: noiseOffset, count: prompts.count, itemShape: model.spec.itemShape)
    let start = Date()
    let (imgs, nfe) = try generate(model, x0: x0, prompts: prompts, solver: solver, guidance: guidance, batchSize: batchSize)
    let secs = Date().timeIntervalSince(start)
    let clipped = imgs  // FD on raw outputs: clipping would hide out-of-range samples
    var acc: Double? = nil
    if !classes.isEmpty {
        let pred = try classify(reference.evaluator, images: clipped)
        acc = Double(zip(pred, classes).filter { $0 == $1 }.count) / Double(classes.count)
    }
    let fdF = try frechetDistance(GaussianFit(classifierFeatures(reference.evaluator, images: clipped)), reference.features)
    let fdP = try frechetDistance(GaussianFit(clipped.reshaped([prompts.count, -1])), reference.pixels)
    return (acc, fdF, fdP, Double(prompts.count) / max(secs, 1e-9), nfe, imgs)
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
