import Foundation
import ConfigKit
import Datasets
import Diffusion
import Evaluation
import Formats
import Models
import Experiments
import Reporting

extension Pipeline {
    /// The report of a chain invocation (what `reflow` writes when the chain ends).
    @discardableResult
    public func writeReport(_ r: ChainResult) throws -> RunReportFiles {
        try writeReport(table: r.table, stages: r.stages, seconds: r.seconds, grids: r.grids)
    }

    /// Writes results.md and report.html in the chain's run folder from its results table,
    /// stage timings and checkpoints (the side-by-side figure and straightness profiles are
    /// drawn from the checkpoints that exist).
    @discardableResult
    public func writeReport(table: ChainTable, stages: [ChainStageReport]? = nil, seconds: Double? = nil,
                            grids: [String]) throws -> RunReportFiles {
        let out = chainOutputs, e = config.eval, fm = FileManager.default
        let timings: [StageTiming]
        if let stages {
            timings = stages.map { StageTiming(name: $0.name, status: $0.status, seconds: $0.seconds, output: $0.output, note: $0.note) }
        } else if let data = fm.contents(atPath: stagesPath) {
            do { timings = try JSONDecoder().decode([StageTiming].self, from: data) } catch {
                throw ModelError("\(stagesPath): not a stage list (\(error.localizedDescription)); delete it or re-run the chain")
            }
        } else {
            timings = []
        }
        let w = config.pairs.guidance, top = e.steps.max() ?? 25
        var columns: [ReportColumn] = []
        // A diffusion teacher is drawn with the eval sampler and has no Euler paths to plot.
        let diffusionTeacher = fm.fileExists(atPath: out.teacher)
            ? try DiffusionTeacher(metadata: Safetensors.readMetadata(URL(fileURLWithPath: out.teacher)), source: out.teacher) : nil
        if fm.fileExists(atPath: out.teacher) {
            columns += [top, 1].map {
                var c = ReportColumn(label: "teacher", checkpoint: out.teacher, steps: $0, guidance: w)
                c.sampler = e.sampler
                return c
            }
        }
        for (label, path) in [("2-RF", out.reflow), ("2-RF + distill", out.distill), ("teacher + direct distill", out.directDistill)]
        where fm.fileExists(atPath: path) {
            columns.append(ReportColumn(label: label, checkpoint: path, steps: 1, guidance: 1))
        }
        let flows = [("teacher", out.teacher, w), ("2-RF", out.reflow, Float(1))]
            .filter { fm.fileExists(atPath: $0.1) && !($0.0 == "teacher" && diffusionTeacher != nil) }
            .map { ReportFlow(label: $0.0, checkpoint: $0.1, guidance: $0.2) }
        let train = try loadDataset(.train)
        var prompts: [String] = []
        for p in samplePrompts(train) where !prompts.contains(p) && prompts.count < 8 { prompts.append(p) }
        let points = train.itemShape == [2, 1, 1]
        var input = RunReportInput(
            runPath: run.path, title: "\(config.name): the rectified-flow chain on \(config.dataset.name.rawValue)",
            configText: (try? String(contentsOfFile: run.configPath, encoding: .utf8)) ?? dumpConfig(config),
            table: table, stages: timings, seconds: seconds, threads: config.threads, grids: grids,
            metricsPath: run.metricsPath, columns: columns, prompts: prompts, imagesPerPrompt: points ? 128 : 4,
            seed: UInt64(bitPattern: Int64(e.seeds.first ?? 0)), straightness: flows,
            straightnessSteps: max(2, e.straightnessStepsResolved), straightnessSamples: min(e.samples, 256))
        input.pointItems = points
        return try writeRunReport(input)
    }

    /// `reflow report`: the report of a finished run from its results.json and stages.json.
    @discardableResult
    public func writeReport() throws -> RunReportFiles {
        let path = chainOutputs.results
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ModelError("\(path) does not exist: run the chain first (reflow --config \(run.configPath))")
        }
        let table: ChainTable
        do { table = try JSONDecoder().decode(ChainTable.self, from: data) } catch {
            throw ModelError("\(path): not a results table (\(error.localizedDescription)); re-run the chain's eval stage")
        }
        var grids = table.grids.filter { FileManager.default.fileExists(atPath: $0) }
        for name in ["conv3", "vgg"] where FileManager.default.fileExists(atPath: run.file("curves_\(name).svg")) {
            grids.append(run.file("curves_\(name).svg"))
        }
        for stage in ["teacher", "reflow", "distill", "direct-distill"] {
            if let g = lastGrid(stage: stage) { grids.append(g) }
        }
        return try writeReport(table: table, grids: grids)
    }
}

/// `reflow report RUN_DIR`: the run's own config snapshot names its dataset, prompts and
/// settings; the folder may have been moved, so its path replaces the config's output_dir/name.
public func writeReport(runDirectory: String) throws -> RunReportFiles {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: runDirectory, isDirectory: &isDir), isDir.boolValue else {
        throw ModelError("\(runDirectory): no such run folder")
    }
    let configPath = runDirectory + "/config.yaml"
    guard FileManager.default.fileExists(atPath: configPath) else {
        throw ModelError("\(runDirectory) is not a run folder: it has no config.yaml (the chain writes one)")
    }
    var config = try loadExperiment(configPath: configPath, overrides: [], threads: nil)
    let url = URL(fileURLWithPath: runDirectory).standardizedFileURL
    if URL(fileURLWithPath: config.outputDir + "/" + config.name).standardizedFileURL != url {
        config.outputDir = url.deletingLastPathComponent().path
        config.name = url.lastPathComponent
    }
    return try Pipeline(config: config, recordConfig: false).writeReport()
}
