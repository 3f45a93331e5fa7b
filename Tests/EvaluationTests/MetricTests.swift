import Foundation
import XCTest
import Autograd
import Evaluation
import Formats
import TensorCore
import TestSupport

/// Fréchet distance and improved precision/recall against numpy/scipy on committed features
/// (scripts/make_eval_fixtures.py), and on inputs small enough to work out by hand.
final class MetricTests: XCTestCase {
    func fixture() throws -> (SafetensorsArchive, [String: Double]) {
        let f = try loadTorchFixture("eval_metrics", bundle: .module)
        guard let text = f.metadata["expected"],
              let expected = try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Double] else {
            throw TorchFixtureError("eval_metrics: metadata 'expected' is missing")
        }
        return (f, expected)
    }

    func testFrechetDistanceMatchesScipy() throws {
        let (f, expected) = try fixture()
        let real = try GaussianFit(f.require("fd_real")), fake = try GaussianFit(f.require("fd_fake"))
        let fd = try frechetDistance(real, fake)
        XCTAssertEqual(fd, expected["fd"]!, accuracy: 1e-9 * expected["fd"]!, "scipy.linalg.sqrtm reference")
        XCTAssertEqual(try frechetDistance(fake, real), fd, accuracy: 1e-9 * fd, "symmetric")
        XCTAssertEqual(try frechetDistance(real, real), 0, accuracy: 1e-9)
    }

    func testPrecisionRecallMatchNumpy() throws {
        let (f, expected) = try fixture()
        let real = try f.require("pr_real"), fake = try f.require("pr_fake")
        for k in [1, 3, 5] {
            let pr = try RealManifold(real: real, k: k).precisionRecall(fake)
            // Shares of covered points: compared as the exact counts numpy found.
            XCTAssertEqual(pr.precision, expected["precision_count_k\(k)"]! / Double(fake.shape[0]), "precision k=\(k)")
            XCTAssertEqual(pr.recall, expected["recall_count_k\(k)"]! / Double(real.shape[0]), "recall k=\(k)")
        }
    }

    /// Real points 0, 1, 2, 3 on a line (k = 1: every ball has squared radius 1); generated
    /// points 0.5, 10, 2.9. Precision: 0.5 and 2.9 lie in a real ball, 10 does not: 2/3.
    /// Recall: the generated balls (squared radii 5.76, 50.41, 5.76) hold every real point: 1.
    func testPrecisionRecallByHand() throws {
        let real = Tensor([0, 1, 2, 3], shape: [4, 1]), fake = Tensor([0.5, 10, 2.9], shape: [3, 1])
        let pr = try RealManifold(real: real, k: 1).precisionRecall(fake)
        XCTAssertEqual(pr.precision, 2.0 / 3.0)
        XCTAssertEqual(pr.recall, 1)
        // The same set twice: every point is in its own ball.
        let same = try RealManifold(real: real, k: 1).precisionRecall(real)
        XCTAssertEqual(same.precision, 1); XCTAssertEqual(same.recall, 1)
    }

    func testPrecisionRecallErrorsNameTheProblem() {
        let real = Tensor([0, 1, 2, 3], shape: [4, 1])
        assertThrows(["need more than k = 3 real points, got 3"]) { _ = try RealManifold(real: Tensor([0, 1, 2], shape: [3, 1]), k: 3) }
        assertThrows(["feature widths differ: 2 vs 1"]) {
            _ = try RealManifold(real: real, k: 1).precisionRecall(Tensor([0, 1, 2, 3], shape: [2, 2]))
        }
        assertThrows(["features must be [N >= 1, D]"]) { _ = try RealManifold(real: Tensor([0, 1, 2, 3], shape: [4]), k: 1) }
    }
}
