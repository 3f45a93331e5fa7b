import XCTest
import Foundation
import Experiments
import Autograd
import Models
import NN
import Reporting
import TestSupport

/// The perceptual distillation loss never runs in an evaluator's feature space.
final class PerceptualTests: XCTestCase {
    func testPerceptualLossRefusesAnEvaluatorAndNamesTheFix() throws {
        Log.level = .warning
        let dir = try makeTempDir("perceptual").path
        let p = try Pipeline(config: chainToyConfig(output: dir, extra: ["distill.loss=perceptual"]))
        assertThrows(["needs the perceptual network \(dir)/none.safetensors", "reflow-train --config <config> --stage perceptual"]) {
            _ = try p.distillationLossFromConfig(perceptualNet: dir + "/none.safetensors")
        }
        let net = makeClassifier(.conv3, inputShape: [2, 1, 1], classes: 8, width: 8, seed: 3)
        let path = dir + "/net.safetensors"
        try saveCheckpoint(net, metadata: net.metadata(extra: ["role": "evaluator"]), to: URL(fileURLWithPath: path))
        assertThrows(["is an evaluator (metadata role 'evaluator')"]) { _ = try p.distillationLossFromConfig(perceptualNet: path) }
        try saveCheckpoint(net, metadata: net.metadata(extra: ["role": "perceptual"]), to: URL(fileURLWithPath: path))
        let loss = try p.distillationLossFromConfig(perceptualNet: path)
        XCTAssertEqual(loss.name, "perceptual")
        let a = Tensor([0.1, -0.2, 0.3, 0.4], shape: [2, 2, 1, 1]), b = Tensor([0.1, -0.2, 0.3, 0.4], shape: [2, 2, 1, 1])
        XCTAssertEqual(try loss(a, b).item, 0, "identical images: no perceptual distance")
        XCTAssertGreaterThan(try loss(a, b * 2).item, 0)
    }
}
