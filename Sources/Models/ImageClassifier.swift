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
    let archive = try Safetensors.read(url)
    guard let shape = archive.metadata["input_shape"]?.split(separator: ",").compactMap({ Int($0) }), shape.count == 3,
          shape.allSatisfy({ $0 >= 1 }),
          let classes = archive.metadata["classes"].flatMap({ Int($0) }), classes >= 1,
          let fw = archive.metadata["feature_width"].flatMap({ Int($0) }), fw >= 1 else {
        throw ModelError("evaluator \(url.path): metadata lacks a valid input_shape/classes/feature_width")
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
    let c: any ImageClassifier
    switch arch {
    case .conv3: c = Classifier(inputShape: shape, classes: classes, width: w.shape[0], featureWidth: fw, seed: 0)
    case .vgg: c = VGGClassifier(inputShape: shape, classes: classes, width: w.shape[0], featureWidth: fw, seed: 0)
    }
    try c.loadStateDict(archive.tensors, source: "evaluator \(url.path)")
    return (c, archive.metadata)
}
