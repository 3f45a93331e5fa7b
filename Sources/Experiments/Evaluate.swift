import Foundation
import Autograd
import Data
import Flow
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
