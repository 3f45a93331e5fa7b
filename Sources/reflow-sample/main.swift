import ArgumentParser
import Experiments
import ConfigKit
import Control
import Diffusion
import Flow
import Generation
import ReflowCLI
import Reporting
import Foundation
import Sampling
import TensorCore

BLASLauncher.reexecIfNeeded()

struct ReflowSample: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reflow-sample",
        abstract: "Draw a PNG grid of samples from any reflow checkpoint.",
        discussion: """
        Example: reflow-sample runs/digits/teacher.safetensors --prompt "the number 7" --prompt "digit 3" \
        --per-prompt 8 --steps 25 --guidance 2 --output digits.png

        --interpolate N writes N frames between two noises for one prompt (spherical interpolation). \
        --refine 0.7:4 --refiner runs/digits/teacher.safetensors re-noises the (one-step) samples to flow time 0.7 \
        and lets the teacher solve the last 4 Euler steps (InstaFlow's refiner pass). \
        The output is always PNG: --output must end in .png and its folder must exist.
        """,
        version: ReflowVersion.string)

    @Argument(help: "Model checkpoint (.safetensors written by reflow-train or reflow-distill).")
    var checkpoint: String

    @Option(name: .long, help: "A prompt (repeatable). Use \"\" for the unconditional one.")
    var prompt: [String] = []

    @Option(name: .long, help: "File with one prompt per line (<empty> = unconditional).")
    var prompts: String?

    @Option(name: .long, help: "Experiment config whose `sample` (and `pairs` tolerances) section gives the defaults below; without it, the built-in defaults of those sections.")
    var config: String?
    @Option(name: .customLong("set"), help: ArgumentHelp("Override a config key (repeatable), e.g. sample.steps=8.", valueName: "key.path=value"))
    var overrides: [String] = []
    @Option(name: .long, help: "Solver steps (default: sample.steps).") var steps: Int?
    @Option(name: .long, help: "ODE solver (default: sample.solver).") var solver: SolverKind?
    @Option(name: .long, help: "Diffusion teachers: sampler, ddim, ddim-clean or dpmsolver++ (default: sample.sampler); --steps are its model evaluations.") var sampler: DiffusionSamplerKind?
    @Option(name: .long, help: "Classifier-free guidance weight, 1 = none (default: sample.guidance).") var guidance: Float?
    @Option(name: .long, help: "Noise seed: item i's noise depends only on (seed, i).") var seed = 0
    @Option(name: .long, help: "Samples per prompt.") var perPrompt = 1
    @Option(name: .long, help: "Grid columns (default: per-prompt count, or up to 10).") var columns: Int?
    @Option(name: .long, help: "Frames of a latent interpolation strip for one prompt (0 = off).") var interpolate = 0
    @Option(name: .long, help: "Output PNG.") var output = "samples.png"
    @Option(name: .long, help: "Threads.") var threads = 2
    @Flag(name: .long, help: "Print only warnings and errors on stderr.") var quiet = false
    @Option(name: .long, help: "2-D models: plot this many ODE trajectories per prompt instead of a grid.") var trajectories = 0
    @Flag(name: .long, help: "Map words outside the vocabulary to <unk> instead of failing.") var allowUnknown = false
    @Option(name: .long, help: ArgumentHelp("Refiner pass: re-noise the samples to flow time t and solve to 1 with --refiner in K Euler steps.", valueName: "t:K"))
    var refine: String?
    @Option(name: .long, help: "The flow that refines (a flow teacher or a 2-RF checkpoint); required with --refine.") var refiner: String?
    @Option(name: .long, help: "Guidance of the refiner (default: sample.guidance).") var refineGuidance: Float?
    @OptionGroup var adapters: LoRAOptions

    // ControlNet
    @Option(name: .long, help: ArgumentHelp("A ControlNet (reflow-train --stage controlnet) applied to the checkpoint, at its trained scale or :scale.", valueName: "file[:scale]"))
    var controlnet: String?
    @Option(name: .long, help: ArgumentHelp("The control image every sample follows: a PNG at the model's size (grey; white = 1), e.g. an edge map.", valueName: "image.png"))
    var control: String?

    func validate() throws {
        if prompt.isEmpty && prompts == nil { throw ValidationError("give at least one --prompt or --prompts <file>") }
        if let steps, steps < 1 { throw ValidationError("--steps must be at least 1") }
        if perPrompt < 1 { throw ValidationError("--per-prompt must be at least 1") }
        if (controlnet == nil) != (control == nil) { throw ValidationError("--controlnet and --control go together: a ControlNet and the control image it follows") }
        if controlnet != nil && (interpolate > 0 || trajectories > 0 || refine != nil) {
            throw ValidationError("--controlnet draws a grid: drop --interpolate, --trajectories and --refine")
        }
        if interpolate < 0 || interpolate == 1 { throw ValidationError("--interpolate needs at least 2 frames") }
        if refine != nil && refiner == nil { throw ValidationError("--refine needs --refiner <flow checkpoint>") }
        if refine == nil && (refiner != nil || refineGuidance != nil) { throw ValidationError("--refiner and --refine-guidance need --refine t:K") }
        if let refine { do { _ = try RefineSettings(parsing: refine) } catch { throw ValidationError("--refine \(error)") } }
        // The grid is always PNG: refuse a name that would promise another format.
        if !output.lowercased().hasSuffix(".png") {
            throw ValidationError("--output must name a .png file (reflow-sample writes PNG), got '\(output)'")
        }
        // Checked before the model runs, and named as given (not our temporary file's name).
        let folder = URL(fileURLWithPath: output).deletingLastPathComponent().path
        var isDir: ObjCBool = false
        if !FileManager.default.fileExists(atPath: folder, isDirectory: &isDir) {
            throw ValidationError("--output \(output): the folder \(folder) does not exist")
        }
        if !isDir.boolValue { throw ValidationError("--output \(output): \(folder) is not a folder") }
    }

    func run() throws {
        do {
            try requireOneRank("reflow-sample")
            Runtime.threads = threads
            try adapters.install()
            if quiet { Log.level = .warning }
            // The config's sections hold every default; flags override them.
            var sets = overrides
            if let steps { sets.append("sample.steps=\(steps)") }
            if let solver { sets.append("sample.solver=\(solver.rawValue)") }
            if let sampler { sets.append("sample.sampler=\(sampler.rawValue)") }
            if let guidance { sets.append("sample.guidance=\(guidance)") }
            let cfg = try config.map { try loadExperiment(configPath: $0, overrides: sets, threads: nil) }
                ?? loadConfig(ExperimentConfig.self, yaml: "", source: "defaults", overrides: sets)
            let sample = cfg.sample
            var all = prompt
            if let prompts { all += try readPromptFile(prompts) }
            if trajectories > 0 {
                let s = try writeTrajectories(checkpoint: checkpoint, prompts: all, perPrompt: trajectories, steps: sample.steps,
                                              guidance: sample.guidance, seed: UInt64(bitPattern: Int64(seed)), output: output)
                print("wrote \(output) (straightness \(String(format: "%.4f", s)) over \(sample.steps) Euler steps)")
                return
            }
            var r = SampleRequest(checkpoint: checkpoint, prompts: all, output: output,
                                  solver: sample.solverSettings(tolerancesFrom: cfg.pairs), sampler: sample.sampler,
                                  guidance: sample.guidance, seed: UInt64(bitPattern: Int64(seed)), perPrompt: perPrompt)
            r.solverNamed = solver != nil; r.samplerNamed = sampler != nil
            r.columns = columns; r.interpolate = interpolate; r.allowUnknown = allowUnknown
            if let refine, let refiner {
                r.refiner = try Refiner(path: refiner, settings: RefineSettings(parsing: refine), guidance: refineGuidance ?? sample.guidance)
            }
            let (nfe, secs) = try controlnet.map { try runControlledSample(r, controlNet: ControlNetArgument(parsing: $0), control: control ?? "") }
                ?? runSample(r)
            print("wrote \(output) (\(nfe) function evaluations, \(String(format: "%.2f", secs)) s)")
        } catch { exitWithError(error) }
    }
}

ReflowSample.mainWithReflowErrors()
