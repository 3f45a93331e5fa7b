import XCTest
import Experiments
import Sampling
import Formats
import Reporting
import TestSupport
import Foundation

/// distill.flow_guided_weight: the distill stage with the data-free term of the pairs' flow.
final class FlowGuidedDistillTests: XCTestCase {
    func testFlowGuidedDistillRunsResumesAndChangesTheStudent() throws {
        let dir = tempDir("flow-guided")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let base = ["pairs.count=128", "pairs.batch_size=128", "pairs.steps=4", "distill.steps=6", "distill.batch_size=32",
                    "distill.sample_every=0", "distill.checkpoint_every=3", "distill.log_every=3"]
        func pipeline(_ name: String, weight: Float) throws -> Pipeline {
            let p = try Pipeline(config: chainToyConfig(output: dir + "/" + name, extra: base + ["distill.flow_guided_weight=\(weight)"]))
            Log.level = .warning
            return p
        }
        let maker = try pipeline("maker", weight: 0)
        let teacher = dir + "/teacher.safetensors", pairs = dir + "/pairs.h5"
        try randomTeacher(maker, path: teacher)
        _ = try generatePairs(maker.pairsRequest(teacher: teacher, output: pairs))

        let plain = try pipeline("plain", weight: 0).trainDistill(pairs: [pairs], initFrom: teacher, resume: false)
        let guided = try pipeline("guided", weight: 0.5).trainDistill(pairs: [pairs], initFrom: teacher, resume: false)
        XCTAssertEqual(try Safetensors.readMetadata(guided)["flow_guided_weight"], "0.5")
        XCTAssertNil(try Safetensors.readMetadata(plain)["flow_guided_weight"])
        let wp = try weights(plain.path), wg = try weights(guided.path)
        XCTAssertTrue(wp.keys.contains { wp[$0]! != wg[$0]! }, "the term changes the student")

        // Stopped and resumed, the guided stage ends where the uninterrupted one did.
        _ = try pipeline("resumed", weight: 0.5).trainDistill(pairs: [pairs], initFrom: teacher, resume: false, stopAfter: 3)
        let resumed = try pipeline("resumed", weight: 0.5).trainDistill(pairs: [pairs], initFrom: teacher, resume: true)
        let wr = try weights(resumed.path)
        for k in wg.keys { XCTAssertEqual(wg[k]!, wr[k]!, "tensor \(k) differs after resume") }
    }

    func testFlowGuidanceNeedsAOneStepStudent() {
        XCTAssertThrowsError(try chainToyConfig(output: tempDir("fg-config"), extra: ["distill.flow_guided_weight=1", "distill.student_steps=2"])) {
            XCTAssertTrue("\($0)".contains("flow_guided_weight") && "\($0)".contains("one-step"), "\($0)")
        }
    }
}
