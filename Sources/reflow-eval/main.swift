import ArgumentParser
import Experiments
import Flow
import ReflowCLI
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

    @OptionGroup var options: ConfigOptions
    @Option(name: .long, help: ArgumentHelp("Checkpoint to score, as label=path or path (repeatable).", valueName: "label=path"))
    var checkpoint: [String] = []
    @Option(name: .long, help: "Comma-separated solver step counts (sets eval.steps).") var steps: String?
    @Option(name: .long, help: "Samples per (checkpoint, steps, seed) (sets eval.samples).") var samples: Int?
    @Option(name: .long, help: "Comma-separated noise seeds, >= 2 to report a spread (sets eval.seeds).") var seeds: String?
    @Option(name: .long, help: "Fixed-step solver (sets eval.solver).") var solver: SolverKind?
    @Option(name: .long, help: "Comma-separated guidance weights, one set of rows each, e.g. 1,1.5,2 (sets eval.guidance).")
    var guidance: String?
    @Option(name: .long, help: "Euler steps of the straightness trajectories, 0 = skip (sets eval.straightness_steps).")
    var straightness: Int?
    @Option(name: .long, help: "Images generated together (sets eval.batch_size).") var batchSize: Int?
    @Option(name: .long, help: "Evaluator checkpoint (default: checkpoints/evaluators/<dataset>.safetensors).") var evaluator: String?
    @Option(name: .long, help: "Second evaluator, another architecture (default: checkpoints/evaluators/<dataset>.vgg.safetensors when it exists).")
    var secondEvaluator: String?
    @Flag(name: .long, help: "Print JSON instead of Markdown.") var json = false

    func validate() throws {
        if checkpoint.isEmpty && !options.helpConfig { throw ValidationError("give at least one --checkpoint") }
    }

    func run() throws {
        if options.printedConfigHelp() { return }
        do {
            var extra: [String] = []
            if let steps { extra.append(listOverride("eval.steps", steps)) }
            if let samples { extra.append("eval.samples=\(samples)") }
            if let seeds { extra.append(listOverride("eval.seeds", seeds)) }
            if let solver { extra.append("eval.solver=\(solver.rawValue)") }
            if let guidance { extra.append(listOverride("eval.guidance", guidance)) }
            if let straightness { extra.append("eval.straightness_steps=\(straightness)") }
            if let batchSize { extra.append("eval.batch_size=\(batchSize)") }
            let pipeline = try Pipeline(config: options.load(extra: extra))
            let cps = checkpoint.map { c -> (label: String, path: String) in
                if let eq = c.firstIndex(of: "=") { return (String(c[..<eq]), String(c[c.index(after: eq)...])) }
                return (URL(fileURLWithPath: c).deletingPathExtension().lastPathComponent, c)
            }
            let table = try pipeline.evaluate(checkpoints: cps, evaluator: evaluator, secondEvaluator: secondEvaluator)
            print(json ? table.json() : table.markdown())
        } catch { exitWithError(error) }
    }
}

ReflowEval.main()
