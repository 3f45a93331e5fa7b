import Foundation
import Autograd
import Datasets
import Diffusion
import Generation
import Reporting
import Flow
import Models
import TensorCore

// reflow-eval: any checkpoints at any step counts, scored like the chain's table (same noise and
// prompts for every row, repeated over seeds). A flow also gets its straightness; a student (its
// metadata names the flow that made its pairs) gets its distillation error at its own step count.
// A diffusion teacher is sampled with `sampler` at each step count (its rows name the sampler)
// and has no straightness (that is measured on a flow's Euler paths).

public struct EvalRequest {
    public var checkpoints: [(label: String, path: String)]
    /// Solver step counts, one row each.
    public var steps: [Int]
    public var samples: Int
    public var seeds: [UInt64]
    /// A fixed-step solver (an adaptive one has no step count to put in a row).
    public var solver: SolverKind
    /// The sampler of diffusion checkpoints' rows.
    public var sampler: DiffusionSamplerKind
    /// Guidance weights: every step count is scored at each (a guidance curve when several).
    public var guidance: [Float]
    /// Euler steps of the trajectories straightness is measured on (0 = skip).
    public var straightnessSteps: Int
    public var batchSize: Int
    /// Refiner passes: each adds a row per flow checkpoint (its fewest steps, first guidance
    /// weight, then the refiner), scored on the same noise.
    public var refiners: [Refiner] = []

    /// No defaults: reflow-eval builds it from the config's `eval` section.
    public init(checkpoints: [(label: String, path: String)], steps: [Int], samples: Int, seeds: [UInt64],
                solver: SolverKind, sampler: DiffusionSamplerKind, guidance: [Float], straightnessSteps: Int, batchSize: Int) throws {
        guard !guidance.isEmpty else { throw FlowError(op: "eval", "give at least one guidance weight") }
        guard solver != .dopri5 else {
            throw FlowError(op: "eval", "solver dopri5 is adaptive and has no step count; score with euler, heun or rk4")
        }
        self.checkpoints = checkpoints; self.steps = steps; self.samples = samples; self.seeds = seeds
        self.solver = solver; self.sampler = sampler; self.guidance = guidance; self.straightnessSteps = straightnessSteps; self.batchSize = batchSize
    }
}

extension EvalContext {
    /// Scores checkpoints at several step counts on the same noise and prompts.
    public func evaluate(_ r: EvalRequest) throws -> ChainTable {
        var table = emptyTable(samples: r.samples, seeds: r.seeds)
        table.solver = r.solver.rawValue
        table.floor = try floorRow(seeds: r.seeds)
        var makerCache: [String: [Tensor]] = [:]
        for (label, path) in r.checkpoints {
            let (model, meta) = try load(path)
            let diffusion = try DiffusionTeacher(metadata: meta, source: path)
            func method(_ steps: Int) throws -> SampleMethod {
                guard let diffusion else { return .ode(SolverSettings(kind: r.solver, steps: steps, rtol: 0, atol: 0).makeSolver()) }
                return .diffusion(diffusion, try r.sampler.make(for: diffusion, steps: steps))
            }
            let rowLabel = diffusion == nil ? label : "\(label) (\(r.sampler.rawValue))"
            let noises = r.seeds.map { itemNoise(seed: $0, first: 0, count: r.samples, itemShape: model.spec.itemShape) }
            // A student is scored against its pair-maker at the step count it was trained for (with
            // Euler, as it was trained); the maker's multi-step outputs are costly, so only then.
            let studentSteps = meta[StudentKey.studentSteps].flatMap { Int($0) }
            let scoresDistillation = studentSteps.map { r.steps.contains($0) } == true && r.solver == .euler
            let maker = !scoresDistillation ? nil
                : try pairMakerOutputs(meta: meta, student: path, noises: noises, prompts: prompts,
                                       batchSize: r.batchSize, cache: &makerCache)
            try warmUp(model, prompts: prompts, guidance: r.guidance[0], batchSize: r.batchSize)
            for w in r.guidance {
            for steps in r.steps {
                var row = ChainRow(model: rowLabel, steps: steps, nfe: 0, guidance: w)
                for (k, seed) in r.seeds.enumerated() {
                    let s = try scoreSamples(model, method: try method(steps), guidance: w,
                                             prompts: prompts, classes: classes, seed: seed, reference: reference,
                                             batchSize: r.batchSize)
                    row.add(s)
                    if let maker, steps == studentSteps {
                        row.distillError.append(try meanSquaredError(s.images, maker[k]))
                    }
                }
                table.rows.append(row)
                Log.info("eval \(rowLabel) @\(steps) w=\(w): acc \(formatSpread(row.promptAccuracy, digits: 1, percent: true)), FD \(formatSpread(row.fdFeatures))"
                    + (row.distillError.isEmpty ? "" : ", distill error \(formatSpread(row.distillError, digits: 4))"))
            }
            }
            for refiner in r.refiners where diffusion == nil {
                let steps = r.steps.min()!, w = r.guidance[0]
                var row = ChainRow(model: "\(label) + \(refiner.settings) (\(URL(fileURLWithPath: refiner.path).lastPathComponent), w=\(refiner.guidance))",
                                   steps: steps, nfe: 0, guidance: w)
                for seed in r.seeds {
                    row.add(try scoreSamples(model, method: try method(steps), guidance: w, prompts: prompts, classes: classes,
                                             seed: seed, reference: reference, batchSize: r.batchSize, refiner: refiner))
                }
                table.rows.append(row)
                Log.info("eval \(row.model) @\(steps): acc \(formatSpread(row.promptAccuracy, digits: 1, percent: true)), FD \(formatSpread(row.fdFeatures))")
            }
            // Straightness is a property of a flow's ODE (measured at the first guidance weight); a
            // student is not meant to be integrated finely.
            if r.straightnessSteps > 0 && studentSteps == nil && diffusion == nil {
                var st = ChainStraightness(model: label, steps: r.straightnessSteps, guidance: r.guidance[0])
                for x0 in noises {
                    let s = try measureFlowStraightness(model, x0: x0, prompts: prompts, guidance: r.guidance[0],
                                                        steps: r.straightnessSteps, batchSize: r.batchSize)
                    st.value.append(s.value); st.perDimension.append(s.perDimension)
                }
                table.straightness.append(st)
                Log.info("straightness \(label): \(formatSpread(st.value, digits: 4))")
            }
        }
        return table
    }
}
