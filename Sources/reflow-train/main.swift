import ArgumentParser
import ReflowCLI
import Experiments
import Finetuning
import Models
import Foundation
import TensorCore

BLASLauncher.reexecIfNeeded()

struct ReflowTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reflow-train",
        abstract: "Train a stage of the rectified-flow chain from an experiment config.",
        discussion: """
        Stages:
        - teacher: 1-rectified flow on (independent noise, data): regress v(x_t, t, text) on x1 - x0 \
        with x_t = t*x1 + (1-t)*x0, t=0 noise, t=1 data. With teacher.kind=diffusion: an eps- (or v-) prediction \
        diffusion model on a discrete VP schedule (teacher.noise_schedule), steps s drawn from {0..T-1}, \
        x_s = sqrt(abar_s)*data + sqrt(1-abar_s)*eps; the network gets flow time t = 1 - s/T.
        - reflow: k-rectified flow: the same loss on the coupled (noise, image) pairs of reflow-gen-pairs \
        (--input, repeatable; default <run>/pairs/teacher.h5), starting from the weights that made them \
        (--init-from, default <run>/teacher.safetensors), with the config's `reflow` section.
        - evaluator, perceptual: the dataset's classifiers (see --stage).
        - lora: low-rank adapters (the config's `lora` section) on the frozen checkpoint --init-from (teacher, \
        2-RF or student; default <run>/teacher.safetensors), trained with its own objective: the flow loss on \
        the dataset (lora.classes, lora.transform), or for a student the distillation loss on pairs (--input). \
        Writes the adapter file <run>/<name>.safetensors (default name: lora) for --lora FILE[:scale].
        - controlnet: a ControlNet on a frozen U-Net (controlnet.base, default <run>/teacher.safetensors): a         trainable copy of its encoder fed control images made from the data by controlnet.operator, trained with         the base's own loss; writes <run>/controlnet.safetensors (only the ControlNet's weights; its metadata names         the operator and the base's SHA-256) and samples/controlnet.png.

        Outputs go to <output_dir>/<name>/ (printed at start): config.yaml, metrics.jsonl, samples/*.png, \
        checkpoints/<stage>.last.safetensors (+ .state.safetensors for --resume), <stage>.safetensors (EMA weights).

        Every config key can be overridden: --set teacher.steps=500 --set model.channels=[32,64]. \
        List all keys with --help-config.
        """,
        version: ReflowVersion.string)

    @OptionGroup var options: ConfigOptions

    enum Stage: String, ExpressibleByArgument, CaseIterable {
        case teacher, reflow, evaluator, perceptual
        case lora
        case controlnet
    }

    @Option(name: .long, help: "Stage to train (evaluator: the dataset's classifier for FD and prompt accuracy; perceptual: the network of distill.loss = perceptual, another seed, never an evaluator).")
    var stage: Stage = .teacher

    @Option(name: .long, help: "evaluator: architecture (conv3: the first evaluator, <dataset>.safetensors; vgg: the second, <dataset>.vgg.safetensors).")
    var arch: EvaluatorArch = .conv3

    @Option(name: .long, help: ArgumentHelp("reflow: triplet file (repeatable). Default: <run>/pairs/teacher.h5.", valueName: "file.h5"))
    var input: [String] = []

    @Option(name: .long, help: "reflow: checkpoint to start from (the flow that made the pairs). Default: <run>/teacher.safetensors.")
    var initFrom: String?

    @Option(name: .long, help: "reflow, lora: output name (<run>/<name>.safetensors), e.g. reflow3 for a 3-RF (default: the stage's name).")
    var name: String?

    @Flag(name: .long, help: "Continue from the stage's last checkpoint if there is one.")
    var resume = false

    func validate() throws {
        if stage != .reflow && stage != .lora && (!input.isEmpty || initFrom != nil || name != nil) {
            throw ValidationError("--input, --init-from and --name are for --stage reflow and --stage lora")
        }
    }

    func run() throws {
        options.applyLogLevel()
        do {
            let cfg = try options.load()
            let pipeline = try Pipeline(config: cfg)
            switch stage {
            case .perceptual:
                let cmd = (["reflow-train"] + CommandLine.arguments.dropFirst()).joined(separator: " ")
                let (url, acc) = try pipeline.trainEvaluator(arch: .conv3, command: cmd, role: .perceptual)
                printResult("perceptual network: \(url.path)  test accuracy \(String(format: "%.2f%%", acc * 100))")
            case .evaluator:
                let cmd = (["reflow-train"] + CommandLine.arguments.dropFirst()).joined(separator: " ")
                let (url, acc) = try pipeline.trainEvaluator(arch: arch, command: cmd)
                printResult("evaluator: \(url.path)  test accuracy \(String(format: "%.2f%%", acc * 100))")
            case .reflow:
                let inputs = input.isEmpty ? [pipeline.pairsPath("teacher")] : input
                let start = initFrom ?? pipeline.run.file("teacher.safetensors")
                let out = try pipeline.trainReflow(inputs: inputs, initFrom: start, stage: name ?? "reflow", resume: resume)
                printResult("\(name ?? "reflow") weights: \(out.path)")
                printResult("samples: \(pipeline.run.samplesPath)")
            case .lora:
                let base = initFrom ?? pipeline.run.file("teacher.safetensors")
                let out = try pipeline.trainLoRA(initFrom: base, stage: name ?? "lora", pairs: input, resume: resume)
                printResult("\(name ?? "lora") adapters: \(out.path)")
                printResult("samples: \(pipeline.run.samplesPath)")
            case .controlnet:
                let out = try pipeline.trainControlNet(base: pipeline.controlNetBase, resume: resume)
                printResult("controlnet weights: \(out.path)")
            case .teacher:
                let out = try pipeline.trainTeacher(resume: resume)
                printResult("teacher weights: \(out.path)")
                printResult("samples: \(pipeline.run.samplesPath)")
            }
        } catch { exitWithError(error) }
    }
}

ReflowTrain.mainWithReflowErrors(configHelp: true)
