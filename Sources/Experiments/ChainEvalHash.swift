import Foundation
import Evaluation
import Formats
import Generation

extension ChainEvalRequest {
    /// What the table depends on: settings and the SHA-256 of every checkpoint read.
    public func hash() throws -> String {
        var parts = ["chain-eval", "steps=\(steps)" + (teacherSampler == .dpmSolverPP ? "" : "/\(teacherSampler.rawValue)"), "samples=\(samples)", "seeds=\(seeds)", "guidance=\(guidance)/\(reflowGuidance)/\(teacherGuidanceSweep)/\(sweepStudents.map(\.guidance))",
                     "straightness=\(straightnessSteps)/diffusion-ddim-path", "batch=\(batchSize)", "grids=\(gridDirectory ?? "-")/\(gridCount)"]
        if !teacherReference.steps.isEmpty { parts.append("reference=\(teacherReference.sampler.rawValue)\(teacherReference.steps)") }
        for p in [teacher, reflow, distill, directDistill, evaluator, secondEvaluator] + sweepStudents.map(\.path) {
            parts.append(try p.map { FileManager.default.fileExists(atPath: $0) ? try SHA256.hex(file: $0) : "missing" } ?? "-")
        }
        return chainHash(parts)
    }
}

extension Pipeline {
    /// Scores any checkpoints with the config's `eval` section (what reflow-eval does).
    public func evaluate(checkpoints: [(label: String, path: String)], evaluator: String? = nil,
                         secondEvaluator: String? = nil, refiners: [Refiner] = []) throws -> ChainTable {
        let e = config.eval
        var r = try EvalRequest(checkpoints: checkpoints, steps: e.steps, samples: e.samples,
                                seeds: e.seeds.map { UInt64(bitPattern: Int64($0)) }, solver: e.solver, sampler: e.sampler, guidance: e.guidance,
                                straightnessSteps: e.straightnessStepsResolved, batchSize: e.batchSize)
        r.refiners = refiners
        return try EvalContext(test: loadDataset(.test), train: loadDataset(.train), evaluator: evaluator,
                               secondEvaluator: secondEvaluator, samples: e.samples).evaluate(r)
    }
}
