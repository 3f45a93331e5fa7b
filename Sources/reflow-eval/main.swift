import ArgumentParser
import Experiments
import Finetuning
import Flow
import ReflowCLI
import Foundation
import Generation
import Diffusion
import TensorCore

BLASLauncher.reexecIfNeeded()

struct ReflowEval: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reflow-eval",
        abstract: "Score checkpoints: prompt accuracy, Fréchet distance (evaluator features and pixels), straightness, distillation error, speed.",
        discussion: """
        All checkpoints are scored on the same noise (item i of seed s depends only on (s, i)) and the same \
        class-balanced prompts from the test split, at every step count (--steps) and guidance weight \
        (--guidance 1,1.5,2 gives a curve), beside a data row: real training images of the prompts' classes, \
        scored the same way (the floor). FD is measured in the features of two evaluators of different \
        architecture (checkpoints/evaluators/<dataset>.safetensors and <dataset>.vgg.safetensors) and in \
        pixels; precision and recall (k-NN manifolds, k = 3) and prompt accuracy in the first. A flow also \
        gets its straightness on --straightness Euler steps. A student (made by reflow-distill: its metadata \
        names the flow that made its pairs) gets its distillation error at the step count it was trained for: \
        the MSE against that flow's output, solved as its pairs were, on the same noise. A student is meant to \
        be sampled without guidance: pass --guidance 1 for it. Every flag that tunes the scoring sets an eval.* \
        config key (defaults: reflow-eval --help-config). The whole chain's table: reflow table --config <config>.

        Example: reflow-eval --config experiments/digits.yaml --checkpoint teacher=runs/digits/teacher.safetensors \
        --steps 1,2,4,25 --samples 1000 --seeds 0,1

        Refiner rows: reflow-eval --config experiments/quickstart.yaml --checkpoint student=runs/quickstart/distill.safetensors \
        --steps 1 --guidance 1 --refine 0.7:4 --refine 0.85:2 --refiner runs/quickstart/teacher.safetensors
        """,
        version: ReflowVersion.string)

    @OptionGroup var options: ConfigOptions
    @OptionGroup var scoring: EvalOptions
    @OptionGroup var adapters: LoRAOptions
    @Option(name: .long, help: ArgumentHelp("Checkpoint to score, as label=path or path (repeatable).", valueName: "label=path"))
    var checkpoint: [String] = []
    @Option(name: .long, help: "Fixed-step solver (sets eval.solver).") var solver: SolverKind?
    @Option(name: .long, help: "Diffusion checkpoints: sampler, ddim, ddim-clean or dpmsolver++ (sets eval.sampler); --steps are its model evaluations.") var sampler: DiffusionSamplerKind?
    @Option(name: .long, help: "Comma-separated guidance weights, one set of rows each, e.g. 1,1.5,2 (sets eval.guidance).")
    var guidance: String?
    @Option(name: .long, help: "Euler steps of the straightness trajectories, 0 = skip (sets eval.straightness_steps).")
    var straightness: Int?
    @Option(name: .long, help: "Images generated together (sets eval.batch_size).") var batchSize: Int?
    @Option(name: .long, help: ArgumentHelp("Refiner pass (repeatable): each flow checkpoint's fewest-step images re-noised to flow time t and solved to 1 by --refiner in K Euler steps; one extra row each.", valueName: "t:K"))
    var refine: [String] = []
    @Option(name: .long, help: "The flow that refines (a flow teacher or a 2-RF checkpoint); required with --refine.") var refiner: String?
    @Option(name: .long, help: "Guidance of the refiner (default: pairs.guidance, the teacher's).") var refineGuidance: Float?

    // ControlNet
    @Option(name: .long, help: ArgumentHelp("Score every checkpoint with and without this ControlNet: control fidelity (its operator re-applied to the image vs the control) and FD. Checkpoints are then label=path[@steps[,guidance]] (default: the largest eval.steps, the first eval.guidance).", valueName: "file[:scale]"))
    var controlnet: String?
    @Option(name: .long, help: ArgumentHelp("With --controlnet: where controls come from; 'dataset' (the only choice): the operator applied to held-out (test-split) images, whose captions are the prompts.", valueName: "dataset"))
    var control: String?
    @Option(name: .long, help: ArgumentHelp("With --controlnet: write a PNG grid, one row per held-out image: control, then each checkpoint with the ControlNet.", valueName: "file.png"))
    var controlGrid: String?

    func validate() throws {
        if checkpoint.isEmpty { throw ValidationError("give at least one --checkpoint") }
        if controlnet != nil && scoring.json { throw ValidationError("--json is not available with --controlnet (its table is Markdown)") }
        if controlnet == nil && (control != nil || controlGrid != nil) { throw ValidationError("--control and --control-grid need --controlnet") }
        if let control, control != "dataset" { throw ValidationError("--control \(control): reflow-eval takes its controls from the dataset (--control dataset); a single image is for reflow-sample") }
        if !refine.isEmpty && refiner == nil { throw ValidationError("--refine needs --refiner <flow checkpoint>") }
        if refine.isEmpty && (refiner != nil || refineGuidance != nil) { throw ValidationError("--refiner and --refine-guidance need --refine t:K") }
        for r in refine { do { _ = try RefineSettings(parsing: r) } catch { throw ValidationError("--refine \(error)") } }
    }

    func run() throws {
        options.applyLogLevel()
        do {
            var extra = scoring.overrides
            if let solver { extra.append("eval.solver=\(solver.rawValue)") }
            if let sampler { extra.append("eval.sampler=\(sampler.rawValue)") }
            if let guidance { extra.append(listOverride("eval.guidance", guidance)) }
            if let straightness { extra.append("eval.straightness_steps=\(straightness)") }
            if let batchSize { extra.append("eval.batch_size=\(batchSize)") }
            let pipeline = try Pipeline(config: options.load(extra: extra), recordConfig: false)
            try adapters.install()
            if let controlnet {
                let table = try pipeline.evaluateControl(checkpoints: checkpoint, controlNet: controlnet, grid: controlGrid,
                                                         evaluator: scoring.evaluator, secondEvaluator: scoring.secondEvaluator)
                printResult(table.markdown())
                return
            }
            let cps = checkpoint.map { c -> (label: String, path: String) in
                if let eq = c.firstIndex(of: "=") { return (String(c[..<eq]), String(c[c.index(after: eq)...])) }
                return (URL(fileURLWithPath: c).deletingPathExtension().lastPathComponent, c)
            }
            let refiners = try refine.map {
                try Refiner(path: refiner!, settings: RefineSettings(parsing: $0), guidance: refineGuidance ?? pipeline.config.pairs.guidance)
            }
            let table = try pipeline.evaluate(checkpoints: cps, evaluator: scoring.evaluator, secondEvaluator: scoring.secondEvaluator,
                                              refiners: refiners)
            printResult(scoring.json ? table.json() : table.markdown())
        } catch { exitWithError(error) }
    }
}

ReflowEval.mainWithReflowErrors(configHelp: true)
