import ArgumentParser
import Experiments
import Foundation
import TensorCore

BLASLauncher.reexecIfNeeded()

struct ReflowEval: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reflow-eval",
        abstract: "Score checkpoints: prompt accuracy, Fréchet distance (evaluator features and pixels), straightness, distillation error, speed.",
        discussion: """
        All checkpoints are scored on the same noise (item i of seed s depends only on (s, i)) and the same
        class-balanced prompts from the test split. The evaluator is checkpoints/evaluators/<dataset>.safetensors.
        A flow also gets its straightness on --straightness Euler steps. A student (made by reflow-distill:
        its metadata names the flow that made its pairs) gets its distillation error at the step count it
        was trained for: the MSE against that flow's output, solved as its pairs were, on the same noise.
        A student is meant to be sampled without guidance: pass --guidance 1 for it.
        The whole chain's table (every stage of one run): reflow table --config <config>.
        Example: reflow-eval --config experiments/digits.yaml --checkpoint teacher=runs/digits/teacher.safetensors \\
                   --steps 1,2,4,25 --samples 1000 --seeds 0,1
        """)

    @Option(name: .long, help: "Experiment config (names the dataset).") var config: String
    @Option(name: .long, help: ArgumentHelp("Checkpoint to score, as label=path or path (repeatable).", valueName: "label=path"))
    var checkpoint: [String] = []
    @Option(name: .long, help: "Comma-separated solver step counts.") var steps = "1,2,4,25"
    @Option(name: .long, help: "Samples per (checkpoint, steps, seed).") var samples = 1000
    @Option(name: .long, help: "Comma-separated noise seeds (>= 2 to report a spread).") var seeds = "0"
    @Option(name: .long, help: "Solver: euler, heun, rk4.") var solver = "euler"
    @Option(name: .long, help: "Classifier-free guidance weight.") var guidance: Float = 1.5
    @Option(name: .long, help: "Euler steps of the straightness trajectories (0 = skip).") var straightness = 25
    @Option(name: .long, help: "Images generated together.") var batchSize = 250
    @Option(name: .long, help: "Evaluator checkpoint (default: checkpoints/evaluators/<dataset>.safetensors).") var evaluator: String?
    @Option(name: .customLong("set"), help: "Config override (repeatable).") var overrides: [String] = []
    @Option(name: .long, help: "Threads.") var threads: Int?
    @Flag(name: .long, help: "Print JSON instead of Markdown.") var json = false

    func validate() throws {
        if checkpoint.isEmpty { throw ValidationError("give at least one --checkpoint") }
        if parseInts(steps) == nil || parseInts(steps)!.contains(0) { throw ValidationError("--steps must be comma-separated positive integers, got '\(steps)'") }
        if parseInts(seeds) == nil { throw ValidationError("--seeds must be comma-separated integers, got '\(seeds)'") }
        if samples < 2 { throw ValidationError("--samples must be at least 2") }
        if straightness < 0 { throw ValidationError("--straightness must be >= 0, got \(straightness)") }
        if batchSize < 1 { throw ValidationError("--batch-size must be >= 1, got \(batchSize)") }
    }

    func parseInts(_ s: String) -> [Int]? {
        let v = s.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        return v.isEmpty || v.contains(where: { $0 == nil || $0! < 0 }) ? nil : v.map { $0! }
    }

    func run() throws {
        do {
            let cfg = try loadExperiment(configPath: config, overrides: overrides, threads: threads)
            let pipeline = try Pipeline(config: cfg)
            let cps = checkpoint.map { c -> (label: String, path: String) in
                if let eq = c.firstIndex(of: "=") { return (String(c[..<eq]), String(c[c.index(after: eq)...])) }
                return (URL(fileURLWithPath: c).deletingPathExtension().lastPathComponent, c)
            }
            var r = EvalRequest(checkpoints: cps, steps: parseInts(steps)!, samples: samples,
                                seeds: parseInts(seeds)!.map { UInt64($0) })
            guard let sv = SolverName(rawValue: solver) else { throw ValidationError("unknown --solver '\(solver)'") }
            r.solver = sv; r.guidance = guidance; r.evaluator = evaluator
            r.straightnessSteps = straightness; r.batchSize = batchSize
            let table = try pipeline.evaluate(r)
            print(json ? table.json() : table.markdown())
        } catch { exitWithError(error) }
    }
}

ReflowEval.main()
