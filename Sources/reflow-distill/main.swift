import ArgumentParser
import ReflowCLI
import Experiments
import Foundation
import TensorCore

BLASLauncher.reexecIfNeeded()

struct ReflowDistill: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reflow-distill",
        abstract: "Distil a flow into a few-step student (one step: x1 = x0 + v(x0, 0, text)).",
        discussion: """
        The student starts from --init-from and learns to map each pair's noise to its image in \
        distill.student_steps Euler steps (1: t fixed at 0; k > 1: t drawn from the k Euler grid starts), with \
        distill.loss = l2, pseudo-huber (distill.huber_c) or perceptual (activations of a frozen classifier that \
        is not an evaluator, checkpoints/perceptual/<dataset>.safetensors). Training settings come from the \
        config's `distill` section.

        - InstaFlow: --init-from <run>/reflow.safetensors with pairs made BY the 2-RF \
        (reflow-gen-pairs --teacher <run>/reflow.safetensors).
        - Direct distillation (the ablation): --init-from <run>/teacher.safetensors \
        --pairs <run>/pairs/teacher.h5 --stage direct-distill.

        Outputs: <run>/<stage>.safetensors (EMA weights; metadata names the flow that made the pairs, its \
        solver and guidance), samples/<stage>_<step>.png, checkpoints/<stage>.last.safetensors for --resume.
        """,
        version: ReflowVersion.string)

    @OptionGroup var options: ConfigOptions
    @Option(name: .long, help: ArgumentHelp("Triplet file (repeatable). Default: <run>/pairs/reflow.h5.", valueName: "file.h5"))
    var pairs: [String] = []
    @Option(name: .long, help: "Checkpoint the student starts from. Default: <run>/reflow.safetensors.") var initFrom: String?
    @Option(name: .long, help: "Stage name (output file name): distill, direct-distill, ...") var stage = "distill"
    @Option(name: .long, help: "Network for distill.loss = perceptual, not an evaluator (default: checkpoints/perceptual/<dataset>.safetensors; make it with reflow-train --stage perceptual).")
    var perceptualNet: String?
    @Flag(name: .long, help: "Continue from the stage's last checkpoint if there is one.") var resume = false

    func validate() throws {
        if stage.isEmpty || stage.contains("/") { throw ValidationError("--stage must be a plain name, got '\(stage)'") }
    }

    func run() throws {
        options.applyLogLevel()
        do {
            let cfg = try options.load()
            let pipeline = try Pipeline(config: cfg)
            let inputs = pairs.isEmpty ? [pipeline.pairsPath("reflow")] : pairs
            let start = initFrom ?? pipeline.run.file("reflow.safetensors")
            let out = try pipeline.trainDistill(pairs: inputs, initFrom: start, stage: stage, resume: resume, perceptualNet: perceptualNet)
            printResult("\(stage) weights: \(out.path)")
            printResult("samples: \(pipeline.run.samplesPath)")
        } catch { exitWithError(error) }
    }
}

ReflowDistill.mainWithReflowErrors(configHelp: true)
