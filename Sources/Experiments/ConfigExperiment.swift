import Foundation
import ConfigKit
import Datasets
import Diffusion
import Flow
import Models
import NN
import Training

// The toolkit's experiment config: one YAML file in experiments/ describes a whole pipeline
// (teacher, pairs, reflow, distill, sample, eval). Defaults suit the 8x8 digits dataset, so a
// file only states what differs. `configHelp(ExperimentConfig.self)` lists every key for `--help`.

// Domain enums serve the config directly: the config names values of the types the library
// uses (the dataset, the network kind, the solver), so there is no second copy to convert.
extension DatasetName: ConfigValue, ConfigEnum {}
extension ModelSpec.Kind: ConfigValue, ConfigEnum {}
extension SolverKind: ConfigValue, ConfigEnum {}
extension FlowLoss: ConfigValue, ConfigEnum {}

/// Learning-rate schedule after warmup.
public enum Schedule: String, CaseIterable, ConfigEnum {
    case constant, cosine
}

/// How training draws t in [0, 1].
public enum TimeSampling: String, CaseIterable, ConfigEnum {
    case uniform
    case logitNormal = "logit-normal"
    /// 2-RF++'s density ∝ cosh(a (t - 1/2)), a = time_u_a.
    case uShaped = "u-shaped"
}

public enum SolverName: String, CaseIterable, ConfigEnum {
    case euler, heun, rk4, dopri5
}

public enum DistillLoss: String, CaseIterable, ConfigEnum {
    case l2
    case pseudoHuber = "pseudo-huber"
    case perceptual
}

public struct ExperimentConfig: ConfigSection, Equatable {
    public var name = "digits"
    public var seed = 0
    public var threads = 2
    public var outputDir = "runs"
    public var dataset = DatasetSection()
    public var text = TextSection()
    public var model = ModelSection()
    public var teacher = TeacherSection()
    public var pairs = PairsSection()
    public var reflow = TrainSection(steps: 3000, lr: 5e-4)
    public var distill = DistillSection()
    public var sample = SampleSection()
    public var eval = EvalSection()
    public var lora = LoRASection()

    /// A ControlNet trained on a frozen base (reflow-train --stage controlnet).
    public var controlnet = ControlNetSection()

    public init() {}

    public mutating func visit(_ v: inout ConfigVisitor) throws {
        try v.field("name", &name, doc: "run name; outputs go to <output_dir>/<name>/")
        try v.field("seed", &seed, doc: "seed of every random stream (init, noise, batches)")
        try v.field("threads", &threads, doc: "compute threads")
        try v.field("output_dir", &outputDir, doc: "folder holding run folders")
        try v.section("dataset", &dataset, doc: "training images and captions")
        try v.section("text", &text, doc: "caption encoder")
        try v.section("model", &model, doc: "velocity network (also the student's)")
        try v.section("teacher", &teacher, doc: "stage 1: 1-rectified flow on (independent noise, data), or a diffusion model (kind)")
        try v.section("pairs", &pairs, doc: "stage 2: (text, noise, image) triplets from the teacher's ODE")
        try v.section("reflow", &reflow, doc: "stage 3: 2-rectified flow on the teacher's pairs")
        try v.section("distill", &distill, doc: "stage 4: few-step student distilled from pairs")
        try v.section("sample", &sample, doc: "sample grids")
        try v.section("eval", &eval, doc: "evaluation table")
        try v.section("lora", &lora, doc: "reflow-train --stage lora: low-rank adapters on a frozen base checkpoint")

        try v.section("controlnet", &controlnet, doc: "ControlNet on a frozen base (reflow-train --stage controlnet)")

        v.check(!name.isEmpty && !name.contains("/"), "name", "must be a non-empty name without '/'")
        v.check(threads >= 1, "threads", "must be at least 1, found \(threads)")
        v.check(!outputDir.isEmpty, "output_dir", "must not be empty")
    }
}

public struct DatasetSection: ConfigSection, Equatable {
    public var name = DatasetName.digits
    public var root: String? = nil
    public var trainLimit: Int? = nil

    public init() {}

    public mutating func visit(_ v: inout ConfigVisitor) throws {
        try v.field("name", &name, doc: "which dataset")
        try v.field("root", &root, doc: "data location when not the default one")
        try v.field("train_limit", &trainLimit, doc: "use only the first N training items")
        v.check((trainLimit ?? 1) >= 1, "train_limit", "must be at least 1 (or null for all)")
    }
}

public struct TextSection: ConfigSection, Equatable {
    public var maxTokens = 8
    public var width = 64
    public var layers = 2
    public var heads = 4
    public var vocabMinCount = 1

    public init() {}

    public mutating func visit(_ v: inout ConfigVisitor) throws {
        try v.field("max_tokens", &maxTokens, doc: "caption length in tokens (longer is cut)")
        try v.field("width", &width, doc: "embedding width")
        try v.field("layers", &layers, doc: "transformer layers (0 = bag of embeddings)")
        try v.field("heads", &heads, doc: "attention heads")
        try v.field("vocab_min_count", &vocabMinCount, doc: "words seen fewer times become <unk>")
        v.check(maxTokens >= 1, "max_tokens", "must be at least 1")
        v.check(width >= 1, "width", "must be at least 1")
        v.check(layers >= 0, "layers", "must not be negative")
        v.check(heads >= 1 && width % heads == 0, "heads", "must be at least 1 and divide width (\(width))")
        v.check(vocabMinCount >= 1, "vocab_min_count", "must be at least 1")
    }
}

public struct ModelSection: ConfigSection, Equatable {
    public var kind = ModelSpec.Kind.unet
    public var hidden = 256
    public var depth = 3
    public var channels = [32, 64]
    public var blocksPerLevel = 1
    public var attentionLevels = [1]
    public var timeEmbedding = 64
    public var groups = 8
    public var dropout: Float = 0

    public init() {}

    public mutating func visit(_ v: inout ConfigVisitor) throws {
        try v.field("kind", &kind, doc: "network type")
        try v.field("hidden", &hidden, doc: "mlp: hidden width")
        try v.field("depth", &depth, doc: "mlp: hidden layers")
        try v.field("channels", &channels, doc: "unet: channels per resolution level (each level halves H and W)")
        try v.field("blocks_per_level", &blocksPerLevel, doc: "unet: residual blocks per level")
        try v.field("attention_levels", &attentionLevels, doc: "unet: levels (0-based) with self/cross-attention")
        try v.field("time_embedding", &timeEmbedding, doc: "width of the sinusoidal time embedding")
        try v.field("groups", &groups, doc: "unet: GroupNorm groups")
        try v.field("dropout", &dropout, doc: "dropout rate in residual blocks")
        v.check(hidden >= 1, "hidden", "must be at least 1")
        v.check(depth >= 1, "depth", "must be at least 1")
        v.check(!channels.isEmpty && channels.allSatisfy { $0 >= 1 }, "channels", "must be a non-empty list of positive counts")
        v.check(blocksPerLevel >= 1, "blocks_per_level", "must be at least 1")
        v.check(attentionLevels.allSatisfy { $0 >= 0 && $0 < channels.count }, "attention_levels",
                "levels must be in 0..<\(channels.count) (one per entry of channels)")
        v.check(timeEmbedding >= 2 && timeEmbedding % 2 == 0, "time_embedding", "must be a positive even number")
        v.check(groups >= 1 && (kind != .unet || channels.allSatisfy { $0 % groups == 0 }), "groups",
                "must be at least 1 and divide every entry of channels")
        v.check(dropout >= 0 && dropout < 1, "dropout", "must be in [0, 1)")
    }
}

/// One training stage (teacher, reflow; distill adds its own fields).
/// A stage's section: its training settings (`train`) and its own keys; `section.steps` reads
/// and writes `section.train.steps`.
@dynamicMemberLookup
public protocol TrainedSection {
    var train: TrainSection { get set }
}

extension TrainedSection {
    public subscript<T>(dynamicMember key: WritableKeyPath<TrainSection, T>) -> T {
        get { train[keyPath: key] }
        set { train[keyPath: key] = newValue }
    }

    /// Computed settings (e.g. `timeSampler`).
    public subscript<T>(dynamicMember key: KeyPath<TrainSection, T>) -> T { train[keyPath: key] }
}

/// Distillation: a training stage plus the loss and the student's step count. The training
/// fields sit at the same level in YAML (`distill.lr`) and in Swift (`config.distill.lr`).
public struct DistillSection: ConfigSection, TrainedSection, Equatable {
    public var train = TrainSection(steps: 2000, lr: 5e-4, captionDropout: 0)
    public var loss = DistillLoss.l2
    /// Pseudo-Huber c; 0 picks 0.00054 * sqrt(C*H*W) (the improved consistency training value).
    public var huberC: Float = 0
    public var studentSteps = 1
    public var flowGuidedWeight: Float = 0

    public init() {}

    public mutating func visit(_ v: inout ConfigVisitor) throws {
        try train.visit(&v)
        try v.field("loss", &loss, doc: "student loss against the target images")
        try v.field("huber_c", &huberC, doc: "pseudo-huber c (0 = 0.00054 * sqrt(pixels))")
        try v.field("student_steps", &studentSteps, doc: "student solver steps (1 = one-step model)")
        try v.field("flow_guided_weight", &flowGuidedWeight,
                    doc: "flow-guided distillation (SlimFlow): weight of the data-free term where the flow that made the pairs checks the student's move on fresh noise (0 = off)")
        v.check(huberC >= 0, "huber_c", "must not be negative")
        v.check(flowGuidedWeight >= 0 && flowGuidedWeight.isFinite, "flow_guided_weight", "must be a finite weight >= 0")
        v.check(flowGuidedWeight == 0 || studentSteps == 1, "flow_guided_weight", "applies to one-step students (student_steps: 1)")
        v.check(studentSteps >= 1, "student_steps", "must be at least 1")
    }
}

public struct PairsSection: ConfigSection, Equatable {
    public var count = 8192
    public var solver = SolverKind.rk4
    public var sampler = DiffusionSamplerKind.dpmSolverPP
    public var steps = 32
    public var rtol: Double = 1e-3
    public var atol: Double = 1e-4
    public var guidance: Float = 1.5
    public var guidanceSweep: [Float] = []
    public var batchSize = 256

    public init() {}

    /// The solver with this section's steps or tolerances.
    public var solverSettings: SolverSettings { SolverSettings(kind: solver, steps: steps, rtol: rtol, atol: atol) }

    public mutating func visit(_ v: inout ConfigVisitor) throws {
        try v.field("count", &count, doc: "number of triplets to generate")
        try v.field("solver", &solver, doc: "ODE solver for the teacher")
        try v.field("sampler", &sampler, doc: "diffusion teachers: sampler instead of the ODE solver")
        try v.field("steps", &steps, doc: "solver steps (fixed-step solvers; a diffusion sampler's model evaluations)")
        try v.field("rtol", &rtol, doc: "dopri5: relative tolerance")
        try v.field("atol", &atol, doc: "dopri5: absolute tolerance")
        try v.field("guidance", &guidance, doc: "classifier-free guidance weight (1 = none)")
        try v.field("guidance_sweep", &guidanceSweep,
                    doc: "chain: also make teacher pairs at these weights, each with its own 2-RF and student (the students' curve)")
        try v.field("batch_size", &batchSize, doc: "trajectories solved together")
        v.check(count >= 1, "count", "must be at least 1")
        v.check(steps >= 1, "steps", "must be at least 1")
        v.check(guidanceSweep.allSatisfy { $0 > 0 && $0.isFinite }, "guidance_sweep", "weights must be positive")
        v.check(rtol > 0, "rtol", "must be positive")
        v.check(atol > 0, "atol", "must be positive")
        v.check(batchSize >= 1, "batch_size", "must be at least 1")
    }
}

public struct SampleSection: ConfigSection, Equatable {
    public var steps = 32
    public var solver = SolverKind.rk4
    public var sampler = DiffusionSamplerKind.dpmSolverPP
    public var guidance: Float = 1.5
    public var prompts: [String] = []
    public var gridColumns = 8

    public init() {}

    /// The grid solver (dopri5 uses the `pairs` section's tolerances).
    public func solverSettings(tolerancesFrom p: PairsSection) -> SolverSettings {
        SolverSettings(kind: solver, steps: steps, rtol: p.rtol, atol: p.atol)
    }

    public mutating func visit(_ v: inout ConfigVisitor) throws {
        try v.field("steps", &steps, doc: "solver steps")
        try v.field("solver", &solver, doc: "ODE solver")
        try v.field("sampler", &sampler, doc: "diffusion teachers: sampler (steps = its model evaluations)")
        try v.field("guidance", &guidance, doc: "classifier-free guidance weight (1 = none)")
        try v.field("prompts", &prompts, doc: "captions to draw (empty = a spread of the dataset's captions)")
        try v.field("grid_columns", &gridColumns, doc: "images per row in sample grids")
        v.check(steps >= 1, "steps", "must be at least 1")
        v.check(gridColumns >= 1, "grid_columns", "must be at least 1")
    }
}

public struct EvalSection: ConfigSection, Equatable {
    public var steps = [1, 2, 4, 8, 32]
    public var samples = 1000
    public var seeds = [0]
    public var batchSize = 250
    public var solver = SolverKind.euler
    public var sampler = DiffusionSamplerKind.dpmSolverPP
    public var referenceSampler = DiffusionSamplerKind.ddim
    public var referenceSteps: [Int] = []
    public var guidance: [Float] = [1.5]
    public var teacherGuidanceSweep: [Float] = []
    public var straightnessSteps: Int? = nil
    public var gridImages = 100

    public init() {}

    /// Euler steps of the straightness trajectories: the setting, else the largest step count.
    public var straightnessStepsResolved: Int { straightnessSteps ?? steps.max() ?? 1 }

    public mutating func visit(_ v: inout ConfigVisitor) throws {
        try v.field("steps", &steps, doc: "solver step counts to evaluate (one table row each)")
        try v.field("samples", &samples, doc: "generated images per evaluation")
        try v.field("seeds", &seeds, doc: "seeds to average over")
        try v.field("batch_size", &batchSize, doc: "images generated together")
        try v.field("solver", &solver, doc: "reflow-eval: fixed-step solver of the rows (the chain's table uses euler)")
        try v.field("sampler", &sampler, doc: "diffusion teachers: sampler of their rows (steps = model evaluations)")
        try v.field("reference_sampler", &referenceSampler, doc: "chain, diffusion teachers: sampler of the teacher's reference rows")
        try v.field("reference_steps", &referenceSteps,
                    doc: "chain, diffusion teachers: also score the teacher with reference_sampler at these step counts (e.g. [25, 250])")
        try v.field("guidance", &guidance,
                    doc: "reflow-eval: guidance weights, one set of rows each (the chain scores its teacher at pairs.guidance, the rest at 1)")
        try v.field("teacher_guidance_sweep", &teacherGuidanceSweep,
                    doc: "chain: also score the teacher at its largest step count at each of these weights (its FD vs accuracy curve)")
        try v.field("straightness_steps", &straightnessSteps, doc: "Euler steps of straightness trajectories (null = the largest of steps)")
        try v.field("grid_images", &gridImages, doc: "images in each of the chain's evaluation grids")
        v.check(!steps.isEmpty && steps.allSatisfy { $0 >= 1 }, "steps", "must be a non-empty list of positive step counts")
        v.check(referenceSteps.allSatisfy { $0 >= 1 }, "reference_steps", "must be positive step counts")
        v.check(samples >= 2, "samples", "must be at least 2 (a covariance needs two samples)")
        v.check(!seeds.isEmpty, "seeds", "must not be empty")
        v.check(batchSize >= 1, "batch_size", "must be at least 1")
        v.check(!guidance.isEmpty, "guidance", "must list at least one weight")
        v.check(solver != .dopri5, "solver", "must be a fixed-step solver (euler, heun, rk4): dopri5 has no step count")
        v.check((straightnessSteps ?? 1) >= 0, "straightness_steps", "must not be negative (0 = skip)")
        v.check(gridImages >= 1, "grid_images", "must be at least 1")
    }
}
