import XCTest
import TestSupport
import Foundation
import Autograd
import Formats
import Models
import NN
import TensorCore

/// Both evaluator architectures: shapes, gradients to every parameter, and a checkpoint that
/// `loadClassifier` rebuilds as the right architecture with the same outputs.
final class ClassifierTests: XCTestCase {
    func testBothArchitecturesTrainAndRoundTrip() throws {
        let dir = try makeTempDir("classifier")
        for arch in EvaluatorArch.allCases {
            for shape in [[1, 8, 8], [1, 28, 28]] {
                let c = makeClassifier(arch, inputShape: shape, classes: 10, width: 16, seed: 3)
                XCTAssertEqual(c.arch, arch)
                let x = randn([5] + shape, seed: 4)
                let logits = try c(x)
                XCTAssertEqual(logits.shape, [5, 10], "\(arch) \(shape)")
                XCTAssertEqual(try c.features(x).shape, [5, 128])
                try crossEntropy(logits, labels: [0, 1, 2, 3, 9]).backward()
                for (name, p) in c.namedParameters() {
                    XCTAssertNotNil(p.grad, "\(arch): no gradient reached \(name)")
                }
                let url = dir.appendingPathComponent("\(arch.rawValue)-\(shape[1]).safetensors")
                try saveCheckpoint(c, metadata: c.metadata(extra: ["role": "evaluator"]), to: url)
                let (back, meta) = try loadClassifier(from: url)
                XCTAssertEqual(meta["arch"], arch.rawValue)
                XCTAssertEqual(back.arch, arch)
                XCTAssertEqual(try back(x).scalars, try c(x).scalars, "\(arch) reloads to the same outputs")
            }
        }
        // A checkpoint written before the arch metadata existed is the conv3 network.
        let c = Classifier(inputShape: [1, 8, 8], classes: 3, width: 16, seed: 1)
        var meta = c.metadata()
        meta["arch"] = nil
        let old = dir.appendingPathComponent("old.safetensors")
        try saveCheckpoint(c, metadata: meta, to: old)
        XCTAssertEqual(try loadClassifier(from: old).0.arch, .conv3)
        meta["arch"] = "resnet"
        try saveCheckpoint(c, metadata: meta, to: old)
        assertThrows(["unknown arch 'resnet'"]) { _ = try loadClassifier(from: old) }
        assertThrows(["is a vgg network, not a conv3 Classifier"]) {
            _ = try Classifier.load(from: dir.appendingPathComponent("vgg-8.safetensors"))
        }
    }
}
