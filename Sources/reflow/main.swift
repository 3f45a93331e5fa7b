import ArgumentParser
import ReflowCLI
import Experiments
import Formats
import Reporting
import RunReport
import Foundation
import TensorCore

BLASLauncher.reexecIfNeeded()

struct Reflow: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reflow",
        abstract: "Run the whole rectified-flow chain from one config, or print its results table.",
        discussion: """
        - reflow --config experiments/quickstart.yaml [--set key=value ...]: runs the chain \
        (the same as reflow run ...)
        - reflow table --config experiments/quickstart.yaml [--json]: scores the run's checkpoints
        - reflow report runs/quickstart: writes the run's report again (results.md, report.html)
        - reflow serve runs/quickstart: a local web page that draws images from the run's models

        Flags of each: reflow help run, reflow help table, reflow help report, reflow help serve.
        """,
        version: ReflowVersion.string,
        subcommands: [Run.self, Table.self, Report.self, Serve.self],
        defaultSubcommand: Run.self)
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run every stage of the chain in order (the default command).",
        discussion: """
        Stages: evaluator (only when checkpoints/evaluators/<dataset>.safetensors is missing), teacher, \
        pairs (teacher, with pairs.guidance), reflow (2-RF), pairs (2-RF, guidance 1: the teacher's guidance \
        is already in the 2-RF's weights), distill (one-step student of the 2-RF), direct-distill (the same \
        student from the teacher on the teacher's pairs: the ablation), eval.

        A stage whose output exists and was made with the same config section and inputs is skipped; an \
        interrupted stage resumes (training from its last checkpoint, pairs from the committed rows); a stage \
        whose config changed is redone, and so is everything after it. Re-run the same command after any \
        interruption.

        Outputs: <output_dir>/<name>/ with teacher/reflow/distill/direct-distill.safetensors, pairs/*.h5, \
        samples/*.png, metrics.jsonl, results.json, stages.json, and the report: results.md and report.html \
        (table, side-by-side figure, loss and straightness curves, grids, timings, config; figures in report/).

        Example: reflow --config experiments/quickstart.yaml
        """)

    @OptionGroup var options: ConfigOptions
    @Flag(name: .long, help: "Start interrupted stages over instead of resuming them.") var noResume = false
    @Option(name: .long, help: "Evaluator checkpoint (default: checkpoints/evaluators/<dataset>.safetensors, trained if missing).")
    var evaluator: String?
    @Option(name: .long, help: "Second evaluator (default: checkpoints/evaluators/<dataset>.vgg.safetensors, trained if missing; none for toy2d).")
    var secondEvaluator: String?
    @Flag(name: .long, help: "Print the results table as JSON instead of Markdown.") var json = false

    func run() throws {
        options.applyLogLevel()
        do {
            try requireOneRank("reflow (the chain)")
            let cfg = try options.load()
            let pipeline = try Pipeline(config: cfg)
            var o = ChainOptions()
            o.resume = !noResume
            o.evaluator = evaluator
            o.secondEvaluator = secondEvaluator
            o.command = (["reflow"] + CommandLine.arguments.dropFirst()).joined(separator: " ")
            Log.info("chain: \(cfg.name) on \(cfg.dataset.name.rawValue), run folder \(pipeline.run.path)")
            let r = try pipeline.runChain(o)
            print(json ? r.table.json() : r.table.markdown())
            print("")
            print("sample grids:")
            for g in r.grids { print("  \(g)") }
            let report = try pipeline.writeReport(r)
            print("results: \(report.markdown)  (chain wall time \(Progress.formatDuration(r.seconds)))")
            print("report: \(report.html)")
        } catch { exitWithError(error) }
    }
}

struct Table: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "table",
        abstract: "Score the chain's checkpoints and print the table (Markdown, or --json).",
        discussion: """
        Rows: a data row (real training images scored like samples: the floor); the teacher (guidance = \
        pairs.guidance) and the 2-RF (guidance 1: its pairs carried the teacher's) at each of --steps Euler steps, \
        the teacher also at eval.teacher_guidance_sweep weights; the 2-RF's student and the directly distilled \
        student (no guidance). Columns: prompt accuracy, FD in two evaluators' features and in pixels, precision \
        and recall, images/s, each student's distillation error. Straightness of teacher and 2-RF below. Same \
        noise and prompts in every row, over --seeds (mean ± half the range). Also writes the FD-vs-accuracy \
        plots curves_<evaluator>.svg in the run folder. Checkpoints default to the run folder's; override any \
        with the flags below.
        """)

    @OptionGroup var options: ConfigOptions
    @OptionGroup var scoring: EvalOptions
    @Option(name: .long, help: "Teacher checkpoint (default: <run>/teacher.safetensors).") var teacher: String?
    @Option(name: .customLong("reflow"), help: "2-RF checkpoint (default: <run>/reflow.safetensors).") var reflowPath: String?
    @Option(name: .long, help: "2-RF student (default: <run>/distill.safetensors).") var distill: String?
    @Option(name: .long, help: "Directly distilled student (default: <run>/direct-distill.safetensors).") var directDistill: String?
    @Option(name: .long, help: "Guidance of the teacher (default: pairs.guidance).") var guidance: Float?
    @Option(name: .long, help: "Guidance of the 2-RF (default 1: it was trained on guided pairs).") var reflowGuidance: Float?

    func run() throws {
        options.applyLogLevel()
        do {
            try requireOneRank("reflow table")
            let cfg = try options.load(extra: scoring.overrides)
            let pipeline = try Pipeline(config: cfg, recordConfig: false)
            var r = pipeline.chainEvalRequest(evaluator: scoring.evaluator, secondEvaluator: scoring.secondEvaluator)
            if let teacher { r.teacher = teacher }
            let fm = FileManager.default
            r.reflow = reflowPath ?? (fm.fileExists(atPath: r.reflow!) ? r.reflow : nil)
            r.distill = distill ?? (fm.fileExists(atPath: r.distill!) ? r.distill : nil)
            r.directDistill = directDistill ?? (fm.fileExists(atPath: r.directDistill!) ? r.directDistill : nil)
            if let guidance { r.guidance = guidance }
            if let reflowGuidance { r.reflowGuidance = reflowGuidance }
            let table = try pipeline.evaluateChain(r)
            for plot in table.curvePlots() {
                let path = pipeline.run.file("curves_\(plot.name).svg")
                try atomicWrite(plot.svg, to: path)
                Log.info("wrote \(path)")
            }
            print(scoring.json ? table.json() : table.markdown())
        } catch { exitWithError(error) }
    }
}

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Rewrite a finished run's report (results.md and report.html) from its folder.",
        discussion: """
        Reads RUN_DIR/config.yaml, results.json, stages.json and metrics.jsonl and the checkpoints in \
        RUN_DIR; draws the side-by-side figure and the straightness profiles again; prints the path of \
        report.html. The chain writes the same report at its end.
        """)

    @Argument(help: "A run folder written by the chain, e.g. runs/quickstart.") var runDir: String

    func run() throws {
        do {
            try requireOneRank("reflow report")
            let files = try writeReport(runDirectory: runDir)
            print("results: \(files.markdown)")
            print("report: \(files.html)")
        } catch { exitWithError(error) }
    }
}

Reflow.mainWithReflowErrors(configHelp: true)
