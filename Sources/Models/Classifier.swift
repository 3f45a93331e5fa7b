import Foundation
import Formats
import Autograd
import NN
import TensorCore

/// The evaluator: a small conv net classifying dataset images. Its penultimate features are
/// the space for Fréchet distance; its predictions judge prompt accuracy.
public final class Classifier: ImageClassifier {
    public let conv1: Conv2d, norm1: GroupNorm, conv2: Conv2d, norm2: GroupNorm, conv3: Conv2d, norm3: GroupNorm
    public let fc: Linear, head: Linear
    public let inputShape: [Int], classes: Int, featureWidth: Int
    public var isTraining = true
    public var arch: EvaluatorArch { .conv3 }

    public init(inputShape: [Int], classes: Int, width: Int = 32, featureWidth: Int = 128, seed: UInt64) {
        var rng = RNG(seed: seed)
        self.inputShape = inputShape; self.classes = classes; self.featureWidth = featureWidth
        conv1 = Conv2d(inputShape[0], width, kernel: 3, padding: 1, rng: &rng)
        norm1 = GroupNorm(groups: 8, channels: width)
        conv2 = Conv2d(width, 2 * width, kernel: 3, stride: 2, padding: 1, rng: &rng)
        norm2 = GroupNorm(groups: 8, channels: 2 * width)
        conv3 = Conv2d(2 * width, 2 * width, kernel: 3, stride: 2, padding: 1, rng: &rng)
        norm3 = GroupNorm(groups: 8, channels: 2 * width)
        fc = Linear(2 * width, featureWidth, rng: &rng)
        head = Linear(featureWidth, classes, rng: &rng)
    }

    public func children() -> [(String, Module)] {
        [("conv1", conv1), ("norm1", norm1), ("conv2", conv2), ("norm2", norm2), ("conv3", conv3), ("norm3", norm3),
         ("fc", fc), ("head", head)]
    }

    /// Every block's activations, input side first: three conv maps, then the penultimate
    /// features [B, featureWidth] (what a perceptual loss compares).
    public func featureMaps(_ x: Tensor) throws -> [Tensor] {
        try checkInput(x)
        let h1 = try norm1(conv1(x)).silu()
        let h2 = try norm2(conv2(h1)).silu()
        let h3 = try norm3(conv3(h2)).silu()
        return [h1, h2, h3, try fc(h3.mean(axes: [2, 3])).silu()]
    }

    /// Class logits [B, classes].
    public func callAsFunction(_ x: Tensor) throws -> Tensor { try head(features(x)) }

    public func logits(features: Tensor) throws -> Tensor { try head(features) }

    /// Mean cross-entropy of logits against integer labels.
    public static func crossEntropy(_ logits: Tensor, labels: [Int]) throws -> Tensor {
        try Models.crossEntropy(logits, labels: labels)
    }

    public static func load(from url: URL) throws -> (Classifier, [String: String]) {
        let (c, meta) = try loadClassifier(from: url)
        guard let conv = c as? Classifier else {
            throw ModelError("evaluator \(url.path) is a \(c.arch.rawValue) network, not a conv3 Classifier; load it with loadClassifier")
        }
        return (conv, meta)
    }
}
