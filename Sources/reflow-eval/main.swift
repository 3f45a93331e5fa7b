import ArgumentParser
import Experiments
import Foundation
import TensorCore

BLASLauncher.reexecIfNeeded()

struct ReflowEval: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reflow-eval",
        abstract: "Score checkpoints: prompt accuracy, Fréchet distance (evaluator features and pixels), speed.",
        discussion: """
        All checkpoints are scored on the same noise (item i of seed s depends only on (s, i)) and the same
        class-balanced prompts from the test split. The evaluator is checkpoints/evaluators/<dataset>.safetensors.
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
    @Option(name: .long, help: "Evaluator checkpoint (default: checkpoints/evaluators/<dataset>.safetensors).") var evaluator: String?
    @Option(name: .customLong("set"), help: "Config override (repeatable).") var overrides: [String] = []
    @Option(name: .long, help: "Threads.") var threads: Int?
    @Flag(name: .long, help: "Print JSON instead of Markdown.") var json = false

    func validate() throws {
        if checkpoint.isEmpty { throw ValidationError("give at least one --checkpoint") }
        if parseInts(steps) == nil { throw ValidationError("--steps must be comma-separated positive integers, got '\(steps)'") }
        if parseInts(seeds) == nil { throw ValidationError("--seeds must be comma-separated integers, got '\(seeds)'") }
        if samples < 2 { throw ValidationError("--samples must be at least 2") }
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
            let scores = try pipeline.evaluate(r)
            print(json ? scoresJSON(scores) : scoresTable(scores))
        } catch { exitWithError(error) }
    }
}

ReflowEval.main()
