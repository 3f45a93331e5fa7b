import Foundation
import Autograd
import Datasets
import Diffusion
import Formats
import Reporting
import Generation
import Flow
import Models
import TensorCore

// The chain's results table (InstaFlow's ablation at our scale):
//   teacher and 2-RF at several Euler step counts, the 2-RF's one-step student, the teacher's
//   one-step student ("direct distillation"), straightness of teacher and 2-RF, images/s, and
//   each student's distillation error.
// Every row uses the same noise (item i of eval seed s is itemNoise(s, i)) and the same
// class-balanced test prompts, and is repeated over the eval seeds (mean ± half the range).
// The teacher is sampled with the guidance it made its pairs with; the 2-RF and the students
// with none (the teacher's guidance is in their weights: guidance is applied once per chain).
// Eval noise never overlaps pair noise (`pairsNoiseSeed`), so the distillation error is
// measured on fresh noise. A diffusion teacher is sampled with `teacherSampler` at each step
// count instead of Euler (and with `teacherReference` at its step counts, e.g. DDIM 25 and 250);
// its straightness is measured on its DDIM path in flow coordinates (`VPSchedule.flowCoordinates`).

/// The chain's four checkpoints and how to score them. No defaults: the chain builds it from
/// the config's `eval` and `pairs` sections.
public struct ChainEvalRequest {
    public var teacher: String
    public var reflow: String?
    public var distill: String?
    public var directDistill: String?
    /// Euler step counts of the flows' rows (a diffusion teacher's sampler steps).
    public var steps: [Int]
    /// The sampler of a diffusion teacher's rows.
    public var teacherSampler: DiffusionSamplerKind
    /// A diffusion teacher's reference rows: this sampler at these step counts (none: no rows).
    public var teacherReference: (sampler: DiffusionSamplerKind, steps: [Int]) = (.ddim, [])
    public var samples: Int
    public var seeds: [UInt64]
    /// Classifier-free guidance of the teacher (the guidance its pairs were made with).
    public var guidance: Float
    /// Guidance of the 2-RF: 1 when it was trained on guided pairs (the guidance is in its weights).
    public var reflowGuidance: Float
    /// Other weights at which to score the teacher at its largest step count (its curve).
    public var teacherGuidanceSweep: [Float]
    /// Students distilled (through their own 2-RF) from teacher pairs made at other guidance
    /// weights: their curve.
    public var sweepStudents: [(guidance: Float, path: String)] = []
    /// Euler steps of the trajectories straightness is measured on.
    public var straightnessSteps: Int
    public var batchSize: Int
    /// Evaluator checkpoints (nil: checkpoints/evaluators/<dataset>.safetensors and, when it
    /// exists, <dataset>.vgg.safetensors).
    public var evaluator: String?
    public var secondEvaluator: String?
    /// Where to write sample grids (nil: none), and how many images each holds.
    public var gridDirectory: String?
    public var gridCount: Int

    public init(teacher: String, reflow: String?, distill: String?, directDistill: String?, steps: [Int],
                teacherSampler: DiffusionSamplerKind, samples: Int,
                seeds: [UInt64], guidance: Float, reflowGuidance: Float, teacherGuidanceSweep: [Float],
                straightnessSteps: Int, batchSize: Int,
                evaluator: String?, secondEvaluator: String?, gridDirectory: String?, gridCount: Int) {
        self.teacher = teacher; self.reflow = reflow; self.distill = distill; self.directDistill = directDistill
        self.steps = steps; self.teacherSampler = teacherSampler; self.samples = samples; self.seeds = seeds; self.guidance = guidance
        self.reflowGuidance = reflowGuidance; self.teacherGuidanceSweep = teacherGuidanceSweep; self.straightnessSteps = straightnessSteps; self.batchSize = batchSize
        self.evaluator = evaluator; self.secondEvaluator = secondEvaluator; self.gridDirectory = gridDirectory; self.gridCount = gridCount
    }
}

/// Straightness of `model` under guidance `w` on Euler trajectories from `x0`, in batches:
/// (mean over items of the per-item value, the same per dimension).
func measureFlowStraightness(_ model: FlowModel, x0: Tensor, prompts: [String], guidance w: Float, steps: Int,
                             batchSize: Int) throws -> (value: Double, perDimension: Double) {
    try straightnessInBatches(model, x0: x0, prompts: prompts, guidance: w, batchSize: batchSize) { v, x in
        try measureStraightness(v, x0: x, steps: steps).straightness.perItem
    }
}

/// Straightness of a diffusion teacher under guidance `w`: its DDIM path (Stable Diffusion's
/// settings, `steps` model evaluations) from `xT`, in flow coordinates, where DDIM is Euler.
func measureDiffusionStraightness(_ model: FlowModel, teacher: DiffusionTeacher, xT: Tensor, prompts: [String], guidance w: Float,
                                  steps: Int, batchSize: Int) throws -> (value: Double, perDimension: Double) {
    let ddim = try DiffusionSamplerKind.ddim.make(for: teacher, steps: steps)
    return try straightnessInBatches(model, x0: xT, prompts: prompts, guidance: w, batchSize: batchSize) { v, x in
        let r = try ddim.sample(teacher.model(v), xT: x, record: true)
        return try straightness(of: try teacher.schedule.flowCoordinates(r.trajectory!)).perItem
    }
}

/// The model in eval mode without gradients, its guided velocity per batch of `x0` handed to
/// `perItem`: (mean of the per-item values, the same per dimension).
func straightnessInBatches(_ model: FlowModel, x0: Tensor, prompts: [String], guidance w: Float, batchSize: Int,
                           _ perItem: (@escaping Velocity, Tensor) throws -> [Double]) throws -> (value: Double, perDimension: Double) {
    model.eval()
    defer { model.train() }
    return try noGrad {
        var values: [Double] = []
        let n = x0.shape[0]
        var lo = 0
        while lo < n {
            let hi = min(n, lo + batchSize)
            let v = try guidedVelocity(model, prompts: Array(prompts[lo..<hi]), guidance: w)
            values += try perItem(v, x0.slice(axis: 0, range: lo..<hi))
            lo = hi
        }
        let value = values.reduce(0, +) / Double(max(1, values.count))
        return (value, value / Double(x0.count / max(1, n)))
    }
}

extension EvalContext {
    /// Scores the chain's checkpoints (see the top of this file).
    public func evaluateChain(_ r: ChainEvalRequest) throws -> ChainTable {
        var table = emptyTable(samples: r.samples, seeds: r.seeds)
        table.floor = try floorRow(seeds: r.seeds)

        var models: [(label: String, path: String, guidance: Float)] = [("teacher", r.teacher, r.guidance)]
        if let p = r.reflow { models.append(("2-RF", p, r.reflowGuidance)) }
        // Students, with the guidance of the teacher pairs behind them.
        let students: [(label: String, path: String?, pairsGuidance: Float?)] =
            [("2-RF + distill", r.distill, r.guidance), ("teacher + direct distill", r.directDistill, nil)]
            + r.sweepStudents.map { ("2-RF + distill", $0.path, $0.guidance) }
        let shape = try load(r.teacher).0.spec.itemShape
        let noises = r.seeds.map { itemNoise(seed: $0, first: 0, count: r.samples, itemShape: shape) }
        let gridN = min(r.gridCount, r.samples)
        let isPoints = shape == [2, 1, 1]
        func grid(_ images: Tensor, _ name: String) throws {
            guard let dir = r.gridDirectory else { return }
            let path = dir + "/eval_\(name).png"
            if isPoints {
                try writeSampleImage(path: path, images: images, columns: 1, labels: classes.isEmpty ? nil : classes)
            } else {
                try writeSampleImage(path: path, images: images.slice(axis: 0, range: 0..<gridN), columns: 10)
            }
            table.grids.append(path)
        }

        // Flows at each step count, and their straightness.
        for (label, path, w) in models {
            let (model, meta) = try load(path)
            let diffusion = try DiffusionTeacher(metadata: meta, source: path)
            if diffusion != nil { table.solver = "Euler solver for flows and students, \(r.teacherSampler.rawValue) for the diffusion teacher (\(diffusion!.name))" }
            func method(_ steps: Int) throws -> SampleMethod {
                guard let diffusion else { return .ode(Euler(steps: steps)) }
                return .diffusion(diffusion, try r.teacherSampler.make(for: diffusion, steps: steps))
            }
            try warmUp(model, prompts: prompts, guidance: w, batchSize: r.batchSize)
            for steps in r.steps {
                var row = ChainRow(model: label, steps: steps, nfe: 0, guidance: w)
                for (k, seed) in r.seeds.enumerated() {
                    let s = try scoreSamples(model, method: try method(steps), guidance: w, prompts: prompts,
                                             classes: classes, seed: seed, reference: reference, batchSize: r.batchSize)
                    row.add(s)
                    if k == 0 && (steps == 1 || steps == r.steps.max()) { try grid(s.images, "\(fileSlug(label))_\(steps)step") }
                }
                table.rows.append(row)
                Log.info("eval \(label) @\(steps): acc \(formatSpread(row.promptAccuracy, digits: 1, percent: true)), FD \(formatSpread(row.fdFeatures))")
            }
            // The teacher's guidance curve: its best step count at other weights.
            if label == "teacher", let top = r.steps.max() {
                for sw in r.teacherGuidanceSweep where sw != w {
                    var row = ChainRow(model: label, steps: top, nfe: 0, guidance: sw)
                    for seed in r.seeds {
                        row.add(try scoreSamples(model, method: try method(top), guidance: sw, prompts: prompts,
                                                 classes: classes, seed: seed, reference: reference, batchSize: r.batchSize))
                    }
                    table.rows.append(row)
                    Log.info("eval \(label) @\(top) w=\(sw): acc \(formatSpread(row.promptAccuracy, digits: 1, percent: true)), FD \(formatSpread(row.fdFeatures))")
                }
            }
            if let diffusion, !r.teacherReference.steps.isEmpty {
                let kind = r.teacherReference.sampler
                for steps in r.teacherReference.steps {
                    var row = ChainRow(model: "\(label) (\(kind.rawValue))", steps: steps, nfe: 0, guidance: w)
                    for seed in r.seeds {
                        row.add(try scoreSamples(model, method: .diffusion(diffusion, try kind.make(for: diffusion, steps: steps)), guidance: w,
                                                 prompts: prompts, classes: classes, seed: seed, reference: reference, batchSize: r.batchSize))
                    }
                    table.rows.append(row)
                    Log.info("eval \(label) \(kind.rawValue) @\(steps): acc \(formatSpread(row.promptAccuracy, digits: 1, percent: true)), FD \(formatSpread(row.fdFeatures))")
                }
            }
            guard r.straightnessSteps > 0 else { continue }
            var st = ChainStraightness(model: diffusion == nil ? label : "\(label) (ddim path)", steps: r.straightnessSteps, guidance: w)
            for (k, _) in r.seeds.enumerated() {
                let s = try diffusion.map {
                    try measureDiffusionStraightness(model, teacher: $0, xT: noises[k], prompts: prompts, guidance: w,
                                                     steps: r.straightnessSteps, batchSize: r.batchSize)
                } ?? measureFlowStraightness(model, x0: noises[k], prompts: prompts, guidance: w,
                                             steps: r.straightnessSteps, batchSize: r.batchSize)
                st.value.append(s.value); st.perDimension.append(s.perDimension)
            }
            table.straightness.append(st)
            Log.info("straightness \(label): \(formatSpread(st.value, digits: 4))")
        }

        // Students: k Euler steps without guidance; distillation error against their pair-maker.
        var makerCache: [String: [Tensor]] = [:]
        for (label, p, pairsGuidance) in students {
            guard let path = p else { continue }
            let (model, meta) = try load(path)
            let k = Int(meta[StudentKey.studentSteps] ?? "1") ?? 1
            let maker = try pairMakerOutputs(meta: meta, student: path, noises: noises, prompts: prompts,
                                             batchSize: r.batchSize, cache: &makerCache)
            try warmUp(model, prompts: prompts, guidance: 1, batchSize: r.batchSize)
            var row = ChainRow(model: label, steps: k, nfe: 0, guidance: 1)
            row.pairsGuidance = pairsGuidance
            // A sweep student's grid carries its pairs' guidance (the main student's keeps its old name).
            let gridName = fileSlug(label) + (pairsGuidance.map { $0 == r.guidance ? "" : String(format: "-w%g", $0) } ?? "")
            for (i, seed) in r.seeds.enumerated() {
                let s = try scoreSamples(model, solver: Euler(steps: k), guidance: 1, prompts: prompts, classes: classes,
                                         seed: seed, reference: reference, batchSize: r.batchSize)
                row.add(s)
                if let maker { row.distillError.append(try meanSquaredError(s.images, maker[i])) }
                if i == 0 { try grid(s.images, "\(gridName)_\(k)step") }
            }
            table.rows.append(row)
            Log.info("eval \(label)\(pairsGuidance.map { " (pairs w=\($0))" } ?? "") @\(k): acc \(formatSpread(row.promptAccuracy, digits: 1, percent: true)), FD \(formatSpread(row.fdFeatures)), distill error \(formatSpread(row.distillError, digits: 4))")
        }
        return table
    }

    /// The multi-step outputs of the flow that made a student's pairs, on each seed's noise,
    /// solved as its pairs were (solver, steps or tolerances, guidance from the student's
    /// metadata). nil when the metadata does not name it or the checkpoint is gone.
    func pairMakerOutputs(meta: [String: String], student: String, noises: [Tensor], prompts: [String], batchSize: Int,
                          cache: inout [String: [Tensor]]) throws -> [Tensor]? {
        guard let makerPath = meta[StudentKey.pairsTeacher], let solverJSON = meta[StudentKey.pairsSolver] else {
            Log.note("\(student) does not name the flow that made its pairs; no distillation error")
            return nil
        }
        guard FileManager.default.fileExists(atPath: makerPath) else {
            Log.note("\(makerPath) (the flow that made \(student)'s pairs) is gone; no distillation error")
            return nil
        }
        if let want = meta[StudentKey.pairsTeacherSHA256], try SHA256.hex(file: makerPath) != want {
            throw ModelError("\(makerPath) changed since it made \(student)'s pairs (SHA-256 differs): the distillation error would compare against another flow; re-run the chain")
        }
        let settings: SolverSettings
        let samplerSettings: DiffusionSamplerSettings?
        do {
            samplerSettings = try DiffusionSamplerSettings(json: solverJSON)
            settings = samplerSettings == nil ? try SolverSettings(json: solverJSON) : SolverSettings(kind: .euler, steps: 1, rtol: 0, atol: 0)
        } catch {
            throw ModelError("\(student): metadata '\(StudentKey.pairsSolver)': \(error)")
        }
        guard let w = meta[StudentKey.pairsGuidance].flatMap(Float.init) else {
            throw ModelError("\(student): metadata '\(StudentKey.pairsGuidance)' is missing or not a number")
        }
        let key = "\(makerPath)|\(solverJSON)|\(w)"
        if let c = cache[key] { return c }
        let (model, makerMeta) = try load(makerPath)
        let method: SampleMethod
        if let samplerSettings {
            guard let teacher = try DiffusionTeacher(metadata: makerMeta, source: makerPath) else {
                throw ModelError("\(student): its pairs were made with the diffusion sampler \(solverJSON), but \(makerPath) is a rectified flow")
            }
            method = .diffusion(teacher, try samplerSettings.make(for: teacher))
        } else {
            method = .ode(settings.makeSolver())
        }
        var outs: [Tensor] = []
        for x0 in noises {
            outs.append(try generate(model, x0: x0, prompts: prompts, method: method, guidance: w, batchSize: batchSize).images)
        }
        cache[key] = outs
        return outs
    }
}

/// Mean over all elements of (a - b)^2, in Double.
func meanSquaredError(_ a: Tensor, _ b: Tensor) throws -> Double {
    guard a.shape == b.shape else { throw ShapeError(op: "meanSquaredError", "\(a.shape) vs \(b.shape)") }
    var s = 0.0
    let pa = a.storage.ptr, pb = b.storage.ptr
    for i in 0..<a.count { let d = Double(pa[i]) - Double(pb[i]); s += d * d }
    return s / Double(max(1, a.count))
}
