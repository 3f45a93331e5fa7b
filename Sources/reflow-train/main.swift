import ArgumentParser
import Experiments
import Foundation
import TensorCore

BLASLauncher.reexecIfNeeded()

struct ReflowTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reflow-train",
        abstract: "Train a stage of the rectified-flow chain from an experiment config.",
        discussion: """
        Stages:
          teacher  1-rectified flow on (independent noise, data): regress v(x_t, t, text) on x1 - x0
                   with x_t = t*x1 + (1-t)*x0, t=0 noise, t=1 data.
        Outputs go to <output_dir>/<name>/ (printed at start): config.yaml, metrics.jsonl, samples/*.png,
        checkpoints/<stage>.last.safetensors (+ .state.safetensors for --resume), <stage>.safetensors (EMA weights).
        Every config key can be overridden: --set teacher.steps=500 --set model.channels=[32,64].
        List all keys with --help-config.
        """)

    @Option(name: .long, help: "Experiment config (YAML), e.g. experiments/digits.yaml.")
    var config: String?

    @Option(name: .long, help: "Stage to train: teacher, or evaluator (the dataset's classifier for FD and prompt accuracy).")
    var stage: String = "teacher"

    @Option(name: .customLong("set"), help: ArgumentHelp("Override a config key (repeatable).", valueName: "key.path=value"))
    var overrides: [String] = []

    @Flag(name: .long, help: "Continue from the stage's last checkpoint if there is one.")
    var resume = false

    @Option(name: .long, help: "Threads for our kernels and OpenBLAS (default: the config's, 2).")
    var threads: Int?

    @Flag(name: .long, help: "Print every config key with its type, default and meaning, then exit.")
    var helpConfig = false

    func validate() throws {
        if !helpConfig && config == nil { throw ValidationError("missing --config <file.yaml>") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        if !["teacher", "evaluator"].contains(stage) { throw ValidationError("unknown --stage '\(stage)' (expected: teacher, evaluator)") }
    }

    func run() throws {
        if helpConfig { print(configHelp(ExperimentConfig.self)); return }
        do {
            let cfg = try loadExperiment(configPath: config!, overrides: overrides, threads: threads)
            let pipeline = try Pipeline(config: cfg)
            switch stage {
            case "evaluator":
                let cmd = (["reflow-train"] + CommandLine.arguments.dropFirst()).joined(separator: " ")
                let (url, acc) = try pipeline.trainEvaluator(command: cmd)
                print("evaluator: \(url.path)  test accuracy \(String(format: "%.2f%%", acc * 100))")
            default:
                let out = try pipeline.trainTeacher(resume: resume)
                print("teacher weights: \(out.path)")
                print("samples: \(pipeline.run.samplesPath)")
            }
        } catch { exitWithError(error) }
    }
}

ReflowTrain.main()
