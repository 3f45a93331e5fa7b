import Foundation
import Formats
import Autograd
import NN
import TensorCore

/// What evaluation needs of a classifier: class logits, features for Fréchet distance, and
/// the activations a perceptual comparison can use.
public protocol ImageClassifier: Module {
    var inputShape: [Int] { get }
    var classes: Int { get }
    var featureWidth: Int { get }
    /// The architecture's name, stored as the `arch` metadata.
    var arch: EvaluatorArch { get }
    /// Activations block by block, input side first; the last is `features`.
    func featureMaps(_ x: Tensor) throws -> [Tensor]
    /// Class logits [B, classes].
    func callAsFunction(_ x: Tensor) throws -> Tensor
    /// Class logits from `features(x)`, so a caller needing both runs the network once.
    func logits(features: Tensor) throws -> Tensor
}

extension ImageClassifier {
    /// Penultimate features [B, featureWidth].
    public func features(_ x: Tensor) throws -> Tensor { try featureMaps(x).last! }

    public func metadata(extra: [String: String] = [:]) -> [String: String] {
        var m = extra
        m["input_shape"] = inputShape.map(String.init).joined(separator: ",")
        m["classes"] = String(classes)
        m["feature_width"] = String(featureWidth)
        m["arch"] = arch.rawValue
        return m
    }

    func checkInput(_ x: Tensor) throws {
        guard Array(x.shape.dropFirst()) == inputShape else {
            throw ShapeError(op: "Classifier", "input \(x.shape) does not match the evaluator's input \(inputShape)")
        }
    }
}

/// The evaluator architectures. Two evaluators of different architecture (and seed) score every
/// table, so that a gap read in one feature space can be checked in another.
public enum EvaluatorArch: String, CaseIterable, Codable, Sendable {
    /// `Classifier`: three strided 3x3 convs, global mean, a feature layer (the first evaluator).
    case conv3
    /// `VGGClassifier`: two 3x3 convs per stage, average pooling, flattened feature layer.
    case vgg
}

/// Mean cross-entropy of logits against integer labels.
public func crossEntropy(_ logits: Tensor, labels: [Int]) throws -> Tensor {
    let n = logits.shape[0], c = logits.shape[1]
    let onehot = Storage(zeros: n * c)
    for (i, l) in labels.enumerated() {
        guard l >= 0 && l < c else { throw ShapeError(op: "crossEntropy", "label \(l) at row \(i) outside 0..<\(c)") }
        onehot.ptr[i * c + l] = -1 / Float(n)
    }
    return try (logits.logSoftmax(axis: -1) * Tensor(shape: [n, c], storage: onehot)).sum()
}

/// A new evaluator of the given architecture.
public func makeClassifier(_ arch: EvaluatorArch, inputShape: [Int], classes: Int, width: Int, seed: UInt64) -> any ImageClassifier {
    switch arch {
    case .conv3: return Classifier(inputShape: inputShape, classes: classes, width: width, seed: seed)
    case .vgg: return VGGClassifier(inputShape: inputShape, classes: classes, width: width, seed: seed)
    }
}

/// Loads an evaluator checkpoint of either architecture (metadata `arch`; none means conv3,
/// the files written before there were two).
public func loadClassifier(from url: URL) throws -> (any ImageClassifier, [String: String]) {
    let archive = try readCheckpointArchive(url)
    guard let shapeText = archive.metadata["input_shape"], let classesText = archive.metadata["classes"],
          let fwText = archive.metadata["feature_width"] else {
        throw ModelError("evaluator \(url.path): metadata lacks input_shape/classes/feature_width")
    }
    let shapeParts = shapeText.split(separator: ",", omittingEmptySubsequences: false)
    let shape = shapeParts.compactMap { Int($0) }
    // Bounded before anything is built: the network's sizes are products of these.
    guard shapeParts.count == 3, shape.count == 3, (1...64).contains(shape[0]), (1...4096).contains(shape[1]),
          (1...4096).contains(shape[2]) else {
        throw ModelError("evaluator \(url.path): metadata 'input_shape' is '\(shapeText)', expected C,H,W with C in 1...64, H and W in 1...4096")
    }
    guard let classes = Int(classesText), (1...100_000).contains(classes) else {
        throw ModelError("evaluator \(url.path): metadata 'classes' is '\(classesText)', expected an integer in 1...100000")
    }
    guard let fw = Int(fwText), (1...65536).contains(fw) else {
        throw ModelError("evaluator \(url.path): metadata 'feature_width' is '\(fwText)', expected an integer in 1...65536")
    }
    let archName = archive.metadata["arch"] ?? EvaluatorArch.conv3.rawValue
    guard let arch = EvaluatorArch(rawValue: archName) else {
        throw ModelError("evaluator \(url.path): unknown arch '\(archName)' (expected \(EvaluatorArch.allCases.map(\.rawValue).joined(separator: ", ")))")
    }
    // The width is read back from the first conv's weight ([width, C, 3, 3]).
    let first = arch == .conv3 ? "conv1.weight" : "conv1a.weight"
    guard let w = archive.tensors[first], w.rank == 4 else {
        throw ModelError("evaluator \(url.path): tensor '\(first)' is missing")
    }
    try checkClassifierSize(arch, inputShape: shape, classes: classes, width: w.shape[0], featureWidth: fw,
                            source: "evaluator \(url.path): tensor '\(first)'")
    let c: any ImageClassifier
    switch arch {
    case .conv3: c = Classifier(inputShape: shape, classes: classes, width: w.shape[0], featureWidth: fw, seed: 0)
    case .vgg: c = VGGClassifier(inputShape: shape, classes: classes, width: w.shape[0], featureWidth: fw, seed: 0)
    }
    try c.loadStateDict(archive.tensors, source: "evaluator \(url.path)")
    return (c, archive.metadata)
}

/// The width read from a file must make a buildable network of bounded size: every GroupNorm
/// splits it into groups (8, or the width itself when smaller), and the VGG feature layer's
/// input grows with the image area. Checked with overflow-safe arithmetic before allocation.
func checkClassifierSize(_ arch: EvaluatorArch, inputShape: [Int], classes: Int, width: Int, featureWidth: Int,
                         source: String) throws {
    let groups = arch == .conv3 ? 8 : Swift.min(8, width)
    guard (1...4096).contains(width), width % groups == 0 else {
        throw ModelError("\(source): width \(width) (its first dimension) must be in 1...4096 and divisible by \(groups) GroupNorm groups")
    }
    let cells = arch == .conv3 ? 1 : Swift.max((inputShape[1] / 4) * (inputShape[2] / 4), 1)
    // conv weights (<= 9 * 2w * 2w per layer, four layers), feature layer, head.
    let fcIn = 2 * width * cells
    let (fc, o1) = fcIn.multipliedReportingOverflow(by: featureWidth)
    let total = 4 * 9 * 4 * width * width + (o1 ? Int.max / 2 : fc) + featureWidth * classes
    guard !o1, total <= ModelSpec.maxParameters else {
        throw ModelError("\(source): the evaluator would have more than \(ModelSpec.maxParameters) parameters (size cap)")
    }
}
