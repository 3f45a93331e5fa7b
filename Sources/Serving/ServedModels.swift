import Foundation
import Diffusion
import Experiments
import Flow
import Models
import Reporting

/// The settings a request gets for what it leaves out.
public struct GenerationDefaults: Equatable, Sendable {
    public var solver: SolverKind
    public var steps: Int
    public var guidance: Float
}

/// One checkpoint the demo serves, loaded once at start.
public final class ServedModel {
    /// What a request names it by: "student", "2-rf", "teacher", "direct-student" (a second model
    /// of the same kind gets "-2", "-3", ...).
    public let id: String
    public let path: String
    /// The checkpoint's `stage` metadata ("teacher", "reflow", "distill", ...).
    public let stage: String
    public let model: FlowModel
    public let defaults: GenerationDefaults

    init(id: String, path: String, stage: String, model: FlowModel, defaults: GenerationDefaults) {
        self.id = id; self.path = path; self.stage = stage; self.model = model; self.defaults = defaults
    }

    /// A person's name for the model: "student (runs/quickstart/distill.safetensors)".
    public var label: String { "\(id) (\(path))" }
}

/// The checkpoints a run folder holds, in the order the page lists them: the one-step models first.
public let runFolderCheckpoints = ["distill.safetensors", "reflow.safetensors", "teacher.safetensors",
                                   "direct-distill.safetensors"]

/// Expands each argument (a checkpoint file, or a run folder: its student, 2-RF, teacher and
/// directly distilled student, those that exist) into checkpoint paths.
public func servedCheckpointPaths(_ arguments: [String]) throws -> [String] {
    var out: [String] = []
    for a in arguments {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: a, isDirectory: &isDir) else {
            throw ModelError("\(a): no such file or folder (give checkpoints or a run folder such as runs/quickstart)")
        }
        if !isDir.boolValue { out.append(a); continue }
        let found = runFolderCheckpoints.map { (a as NSString).appendingPathComponent($0) }
            .filter { FileManager.default.fileExists(atPath: $0) }
        if found.isEmpty {
            throw ModelError("\(a): a folder without any of \(runFolderCheckpoints.joined(separator: ", ")) (train the chain first: reflow --config ...)")
        }
        out += found
    }
    return out
}

/// The run folder's config snapshot, when an argument is a run folder that has one.
public func runFolderConfig(_ arguments: [String]) -> String? {
    arguments.lazy.map { ($0 as NSString).appendingPathComponent("config.yaml") }
        .first { FileManager.default.fileExists(atPath: $0) }
}

/// Loads the checkpoints and names them by their stage. Defaults: a teacher samples as the
/// config's `sample` section says (solver, steps, guidance); a 2-RF and the students take
/// `eval.solver` for one step (a student: its `student_steps`) without guidance, since the
/// teacher's guidance is already in their weights (the chain evaluates them the same way).
public func loadServedModels(_ paths: [String], config: ExperimentConfig) throws -> [ServedModel] {
    var models: [ServedModel] = []
    var taken: [String: Int] = [:]
    for path in paths {
        let (model, meta) = try FlowModel.load(from: URL(fileURLWithPath: path))
        // The page solves rectified flows' ODEs; a diffusion teacher needs its own sampler.
        if let d = try DiffusionTeacher(metadata: meta, source: path) {
            Log.warning("not serving \(path): a diffusion teacher (\(d.name)); reflow serve draws from rectified flows (its 2-RF and students), reflow-sample --sampler draws from it")
            continue
        }
        let stage = meta["stage"] ?? ""
        let base: String
        var defaults = GenerationDefaults(solver: config.eval.solver, steps: 1, guidance: 1)
        switch stage {
        case "teacher":
            base = "teacher"
            defaults = GenerationDefaults(solver: config.sample.solver, steps: config.sample.steps, guidance: config.sample.guidance)
        case let s where s.hasPrefix("reflow"): base = "2-rf"
        case let s where s.hasPrefix("direct-distill"): base = "direct-student"
        case let s where s.hasPrefix("distill"): base = "student"
        default:
            base = ((path as NSString).lastPathComponent as NSString).deletingPathExtension
            defaults = GenerationDefaults(solver: config.sample.solver, steps: config.sample.steps, guidance: config.sample.guidance)
        }
        if let s = meta[StudentKey.studentSteps].flatMap(Int.init), s >= 1 { defaults.steps = s }
        let n = (taken[base] ?? 0) + 1
        taken[base] = n
        models.append(ServedModel(id: n == 1 ? base : "\(base)-\(n)", path: path, stage: stage, model: model, defaults: defaults))
    }
    if models.isEmpty { throw ModelError("no checkpoints to serve") }
    return models
}
