import Foundation
import Autograd
import NN
import TensorCore

/// The second evaluator: two 3x3 convs per stage, 2x2 average pooling after each of two
/// stages, then the flattened map through a feature layer. Another architecture (no strided
/// convs, no global mean: the feature layer sees where things are) and another seed than
/// `Classifier`, so a gap read in one feature space can be checked in another.
public final class VGGClassifier: ImageClassifier {
    public let conv1a: Conv2d, norm1a: GroupNorm, conv1b: Conv2d, norm1b: GroupNorm
    public let conv2a: Conv2d, norm2a: GroupNorm, conv2b: Conv2d, norm2b: GroupNorm
    public let fc: Linear, head: Linear
    public let inputShape: [Int], classes: Int, featureWidth: Int
    public var isTraining = true
    public var arch: EvaluatorArch { .vgg }

    public init(inputShape: [Int], classes: Int, width: Int = 32, featureWidth: Int = 128, seed: UInt64) {
        var rng = RNG(seed: seed)
        self.inputShape = inputShape; self.classes = classes; self.featureWidth = featureWidth
        let groups = Swift.min(8, width)
        conv1a = Conv2d(inputShape[0], width, kernel: 3, padding: 1, rng: &rng)
        norm1a = GroupNorm(groups: groups, channels: width)
        conv1b = Conv2d(width, width, kernel: 3, padding: 1, rng: &rng)
        norm1b = GroupNorm(groups: groups, channels: width)
        conv2a = Conv2d(width, 2 * width, kernel: 3, padding: 1, rng: &rng)
        norm2a = GroupNorm(groups: groups, channels: 2 * width)
        conv2b = Conv2d(2 * width, 2 * width, kernel: 3, padding: 1, rng: &rng)
        norm2b = GroupNorm(groups: groups, channels: 2 * width)
        let cells = (inputShape[1] / 4) * (inputShape[2] / 4)
        fc = Linear(2 * width * Swift.max(cells, 1), featureWidth, rng: &rng)
        head = Linear(featureWidth, classes, rng: &rng)
    }

    public func children() -> [(String, Module)] {
        [("conv1a", conv1a), ("norm1a", norm1a), ("conv1b", conv1b), ("norm1b", norm1b),
         ("conv2a", conv2a), ("norm2a", norm2a), ("conv2b", conv2b), ("norm2b", norm2b), ("fc", fc), ("head", head)]
    }

    public func featureMaps(_ x: Tensor) throws -> [Tensor] {
        try checkInput(x)
        guard inputShape[1] >= 4, inputShape[2] >= 4 else {
            throw ShapeError(op: "VGGClassifier", "images must be at least 4x4 (two 2x2 poolings), got \(inputShape)")
        }
        let h1 = try norm1b(conv1b(norm1a(conv1a(x)).silu())).silu().avgPool2d(kernel: 2)
        let h2 = try norm2b(conv2b(norm2a(conv2a(h1)).silu())).silu().avgPool2d(kernel: 2)
        return [h1, h2, try fc(h2.flattened(from: 1)).silu()]
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor { try head(features(x)) }

    public func logits(features: Tensor) throws -> Tensor { try head(features) }
}
