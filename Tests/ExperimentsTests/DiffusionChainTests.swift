import XCTest
import Experiments
import RunReport
import Formats
import Reporting
import TripletStore
import TestSupport
import Foundation

final class DiffusionChainTests: XCTestCase {
    /// The whole chain from a toy2d diffusion teacher: DPM-Solver++ pairs, a 2-RF initialised
    /// from the teacher's weights, its student, direct distillation, the table and the report.
    func testWholeDiffusionChainOnToy2D() throws {
        let dir = tempDir("diffusion-chain")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let cfg = try chainToyConfig(output: dir, extra: [
            "teacher.kind=diffusion", "teacher.steps=800", "teacher.batch_size=256", "teacher.lr=3e-3", "teacher.warmup=20",
            "teacher.sample_every=0", "teacher.checkpoint_every=0",
            "pairs.count=1024", "pairs.sampler=dpmsolver++", "pairs.steps=10", "pairs.guidance=1",
            "reflow.steps=1200", "reflow.batch_size=256", "reflow.lr=2e-3", "reflow.sample_every=0", "reflow.ema_decay=0.99",
            "distill.steps=150", "distill.batch_size=256", "distill.sample_every=0", "distill.ema_decay=0.99",
            "eval.steps=[1,10]", "eval.samples=256", "eval.seeds=[0,1]", "eval.sampler=dpmsolver++",
            "eval.reference_sampler=ddim", "eval.reference_steps=[10,40]",
        ])
        let p = try Pipeline(config: cfg)
        Log.level = .warning
        var o = ChainOptions()
        o.evaluator = dir + "/toy2d-evaluator.safetensors"
        let r = try p.runChain(o)
        XCTAssertTrue(r.stages.allSatisfy { $0.status == "done" }, "\(r.stages.map(\.status))")
        let teacher = p.run.file("teacher.safetensors"), reflow = p.run.file("reflow.safetensors")
        XCTAssertEqual(try Safetensors.readMetadata(URL(fileURLWithPath: teacher))["teacher_kind"], "diffusion")
        // The 2-RF is a flow that started from the diffusion teacher's weights.
        let rm = try Safetensors.readMetadata(URL(fileURLWithPath: reflow))
        XCTAssertNil(rm["teacher_kind"])
        XCTAssertEqual(rm["init_sha256"], try SHA256.hex(file: teacher))
        let pairs = try TripletReader(path: p.pairsPath("teacher"))
        XCTAssertEqual(pairs.writerAttributes["sampler"], "dpm-solver++(2M, 10, linspace, epsilon), output clipped to [-1, 1]")
        pairs.close()

        XCTAssertEqual(r.table.rows.map(\.model), ["teacher", "teacher", "teacher (ddim)", "teacher (ddim)", "2-RF", "2-RF",
                                                   "2-RF + distill", "teacher + direct distill"])
        XCTAssertEqual(r.table.rows.filter { $0.model == "teacher (ddim)" }.map(\.steps), [10, 40])
        // The teacher's path is measured on its DDIM trajectory in flow coordinates, the 2-RF's on Euler's.
        XCTAssertEqual(r.table.straightness.map(\.model), ["teacher (ddim path)", "2-RF"])
        let s = r.table.straightness.map { $0.value.reduce(0, +) / Double($0.value.count) }
        print("toy2d diffusion chain, straightness teacher (ddim path) \(s[0]), 2-RF \(s[1])")
        XCTAssertLessThan(s[1], 0.3 * s[0], "reflow straightens the teacher's paths")
        func fd(_ model: String, _ steps: Int) -> Double {
            let f = r.table.rows.first { $0.model == model && $0.steps == steps }!.fdFeatures
            return f.reduce(0, +) / Double(f.count)
        }
        print("toy2d diffusion chain, FD (conv3) by row: \(r.table.rows.map { "\($0.model) @\($0.steps): \($0.fdFeatures)" })")
        // Reflow turns the teacher's many-step quality into few steps: the 2-RF's and the
        // student's one-step samples beat the teacher's one-step x0 prediction by far. (The 2-RF
        // starts from an eps network, whose output must turn into a velocity: at 400 steps its
        // one-step FD was still 1.9 against the teacher's 3.1; hence 1,200 steps here.)
        XCTAssertLessThan(fd("teacher (ddim)", 40), 0.5 * fd("teacher", 1))
        XCTAssertLessThan(fd("teacher", 10), 0.5 * fd("teacher", 1), "\(r.table.rows.map { ($0.model, $0.steps, $0.fdFeatures) })")
        XCTAssertLessThan(fd("2-RF", 1), 0.5 * fd("teacher", 1), "\(r.table.rows.map { ($0.model, $0.steps, $0.fdFeatures) })")
        XCTAssertLessThan(fd("2-RF + distill", 1), 0.5 * fd("teacher", 1))
        let report = try p.writeReport(r)
        try checkReport(report, run: p.run.path, teacherSteps: 10, flows: ["2-RF"])
        let md = try String(contentsOfFile: report.markdown, encoding: .utf8)
        XCTAssertTrue(md.contains("dpmsolver++ for the diffusion teacher (epsilon on scaled_linear(1000, 0.00085, 0.012))"), md)
    }
}
