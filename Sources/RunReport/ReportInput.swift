import Foundation
import Diffusion
import Evaluation

/// One stage of a chain invocation as the report lists it (what `stages.json` holds).
public struct StageTiming: Codable, Equatable {
    public var name: String
    /// "done", "resumed" or "skipped" (up to date).
    public var status: String
    public var seconds: Double
    public var output: String
    public var note: String
    public init(name: String, status: String, seconds: Double, output: String, note: String) {
        self.name = name; self.status = status; self.seconds = seconds; self.output = output; self.note = note
    }
}

/// A model column of the side-by-side figure: one checkpoint at a step count and guidance.
public struct ReportColumn {
    public var label: String
    public var checkpoint: String
    public var steps: Int
    public var guidance: Float
    /// The sampler of a diffusion checkpoint (nil: the column must be a flow, drawn with Euler).
    public var sampler: DiffusionSamplerKind? = nil
    public init(label: String, checkpoint: String, steps: Int, guidance: Float) {
        self.label = label; self.checkpoint = checkpoint; self.steps = steps; self.guidance = guidance
    }
}

/// A flow whose straightness is plotted along t (teacher, 2-RF; students take one step).
public struct ReportFlow {
    public var label: String
    public var checkpoint: String
    public var guidance: Float
    public init(label: String, checkpoint: String, guidance: Float) {
        self.label = label; self.checkpoint = checkpoint; self.guidance = guidance
    }
}

/// Everything the run report shows. The report writes `results.md`, `report.html` and the
/// figures under `report/` inside `runPath`; every image is linked by a path relative to it.
public struct RunReportInput {
    public var runPath: String
    public var title: String
    /// The resolved config snapshot (YAML), shown verbatim.
    public var configText: String
    public var table: ChainTable
    public var stages: [StageTiming]
    /// Wall time of the invocation that produced `stages` (nil: unknown, e.g. `reflow report`).
    public var seconds: Double?
    public var threads: Int
    /// Sample grids and plots already written (absolute or run-relative paths).
    public var grids: [String]
    public var metricsPath: String
    /// Same noise and prompts in every column; one row per prompt.
    public var columns: [ReportColumn]
    public var prompts: [String]
    public var imagesPerPrompt: Int
    /// Items are 2-D points (toy2d): the flows' paths are drawn as trajectory figures too.
    public var pointItems = false
    public var seed: UInt64
    public var straightness: [ReportFlow]
    public var straightnessSteps: Int
    public var straightnessSamples: Int
    public init(runPath: String, title: String, configText: String, table: ChainTable, stages: [StageTiming],
                seconds: Double?, threads: Int, grids: [String], metricsPath: String, columns: [ReportColumn],
                prompts: [String], imagesPerPrompt: Int, seed: UInt64, straightness: [ReportFlow],
                straightnessSteps: Int, straightnessSamples: Int) {
        self.runPath = runPath; self.title = title; self.configText = configText; self.table = table
        self.stages = stages; self.seconds = seconds; self.threads = threads; self.grids = grids
        self.metricsPath = metricsPath; self.columns = columns; self.prompts = prompts
        self.imagesPerPrompt = imagesPerPrompt; self.seed = seed; self.straightness = straightness
        self.straightnessSteps = straightnessSteps; self.straightnessSamples = straightnessSamples
    }
}
