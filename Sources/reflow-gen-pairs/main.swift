import ArgumentParser
import ReflowCLI
import Experiments
import TripletStore
import Foundation
import Diffusion
import Sampling
import TensorCore
import Distributed

BLASLauncher.reexecIfNeeded()

struct GenPairs: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reflow-gen-pairs",
        abstract: "Make (text, noise, image) triplets from a flow's ODE, or merge shard parts.",
        discussion: """
        - reflow-gen-pairs --config <yaml> [--teacher ckpt] [--output file.h5] [--shard i/n] ... \
        (the same as reflow-gen-pairs generate ...)
        - reflow-gen-pairs merge part0.h5 part1.h5 ... --output file.h5

        Flags of each: reflow-gen-pairs help generate, reflow-gen-pairs help merge.
        """,
        version: ReflowVersion.string,
        subcommands: [Generate.self, Merge.self],
        defaultSubcommand: Generate.self)
}

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Solve a checkpoint's ODE (or sample a diffusion teacher) from Gaussian noise and write the triplets to HDF5 (the default command).",
        discussion: """
        Pair i gets noise itemNoise(seed, i) (Philox stream i of the noise seed derived from the config's \
        seed) and prompt i mod P of the dataset's training captions (or of --prompts). The solver, steps (or \
        rtol/atol for dopri5), guidance, count and batch size come from the config's `pairs` section \
        (--set pairs.steps=16). The file records the checkpoint path and SHA-256, solver, steps or tolerances, \
        guidance, seed, batch size, prompts and the time convention (t=0 noise, t=1 data) as HDF5 root attributes.

        Diffusion teachers (teacher.kind: diffusion; their checkpoint's metadata says so) are sampled with \
        pairs.sampler (--sampler: ddim, ddim-clean or dpmsolver++) at pairs.steps model evaluations, with the same guidance; \
        the noise stored is the sampler's x_T and the image its output. The file's attributes then also name \
        teacher_kind, diffusion_schedule, diffusion_prediction and sampler, and `solver` holds the sampler's settings.

        Unknown words: a --prompts word the checkpoint's vocabulary lacks is an error. Training captions with \
        such words become <unk>: a note when the checkpoint's vocabulary is the one the config builds from \
        these captions (text.vocab_min_count > 1 leaves rare words out, and the teacher was trained on the same \
        <unk>s), else a warning naming the words, and an error when more than half of the captions hold one.

        Resumable: re-run the same command after an interruption (even kill -9) and it continues from the \
        committed rows; the result equals an uninterrupted run row for row. --overwrite starts over.

        Sharding: --shard i/n writes part i of n (whole batches of a contiguous range of pair indices), e.g. \
        on n machines; join them with `reflow-gen-pairs merge parts... --output file.h5`.

        Guidance: a 2-RF trained on guided pairs already samples the guided distribution; make its pairs with \
        --set pairs.guidance=1 (the chain does) unless you mean to apply the guidance twice.

        Example: reflow-gen-pairs --config experiments/digits.yaml --teacher runs/digits/teacher.safetensors
        """)

    @OptionGroup var options: ConfigOptions
    @Option(name: .long, help: "Checkpoint whose ODE makes the images (teacher, or 2-RF for distillation pairs). Default: <run>/teacher.safetensors.")
    var teacher: String?
    @Option(name: .long, help: "Output HDF5 file. Default: <run>/pairs/<checkpoint name>.h5 (+ .part-i-of-n with --shard).")
    var output: String?
    @Option(name: .long, help: "Prompt file, one per line (<empty> = unconditional); default: the dataset's training captions.")
    var prompts: String?
    @Option(name: .long, help: "Number of pairs (default: pairs.count).") var count: Int?
    @Option(name: .long, help: "Diffusion teachers: sampler, ddim, ddim-clean or dpmsolver++ (default: pairs.sampler).") var sampler: DiffusionSamplerKind?
    @Option(name: .long, help: ArgumentHelp("Write only part i of n (0-based), e.g. 0/4.", valueName: "i/n")) var shard: String?
    @Flag(name: .long, help: "Replace an existing output instead of resuming it.") var overwrite = false
    @OptionGroup var adapters: LoRAOptions

    func validate() throws {
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
    }

    func run() throws {
        options.applyLogLevel()
        do {
            let cfg = try options.load(extra: (count.map { ["pairs.count=\($0)"] } ?? []) + (sampler.map { ["pairs.sampler=\($0.rawValue)"] } ?? []))
            let pipeline = try Pipeline(config: cfg)
            try adapters.install()
            let teacherPath = teacher ?? pipeline.run.file("teacher.safetensors")
            let sh = try shard.map { try Shard(parsing: $0) }
            let name = URL(fileURLWithPath: teacherPath).deletingPathExtension().lastPathComponent
            // Pairs made under adapters are another generator's: never resume the base's file.
            var out = output ?? pipeline.pairsPath(adapters.lora.isEmpty ? name : name + "-lora")
            if let sh, output == nil { out += ".part-\(sh.index)-of-\(sh.count)" }
            var req = try pipeline.pairsRequest(teacher: teacherPath, output: out, promptFile: prompts)
            req.shard = sh
            req.overwrite = overwrite
            if let loras = try adapters.record() { req.extraAttributes["loras"] = loras }
            req.samplerNamed = sampler != nil
            let r = try generatePairs(req, over: .world)
            let nfe = r.meanNFE.map { String(format: ", mean NFE %.1f", $0) } ?? ""
            if r.generated == 0 {
                printResult("\(r.path): already complete (\(r.rows) pairs)")
            } else {
                printResult("\(r.path): \(r.rows) pairs (\(r.generated) generated in \(String(format: "%.1f", r.seconds)) s\(r.resumedFrom > 0 ? ", resumed at \(r.resumedFrom)" : "")\(nfe))")
            }
        } catch { exitWithError(error) }
    }
}

struct Merge: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Join the parts of a sharded pair job into one file, equal to a single run's.",
        discussion: "Checks that the parts come from the same job, are complete and cover every pair exactly once.")

    @Argument(help: "Part files written with --shard (any order).") var parts: [String]
    @Option(name: .long, help: "Merged HDF5 file (replaced if it exists).") var output: String

    func validate() throws {
        if parts.isEmpty { throw ValidationError("give the part files to merge") }
    }

    func run() throws {
        do {
            try requireOneRank("reflow-gen-pairs merge")
            let n = try mergePairParts(parts, into: output)
            print("\(output): \(n) pairs from \(parts.count) parts")
        } catch { exitWithError(error) }
    }
}

GenPairs.mainWithReflowErrors(configHelp: true, subcommandsWithoutConfig: ["merge"])
