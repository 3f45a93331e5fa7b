import Foundation
import Formats
import Autograd
import TensorCore

/// A checkpoint that does not fit the model or the optimizer. One line per problem.
public struct CheckpointError: Error, CustomStringConvertible, Equatable {
    public let problems: [String]
    public init(_ message: String) { problems = [message] }
    public init(problems: [String]) { self.problems = problems }
    public var description: String { problems.joined(separator: "\n") }
}

extension Module {
    /// Copies `tensors` into the parameters by dotted name. Everything is checked before any
    /// parameter changes: a missing tensor, an unexpected (extra) tensor or a wrong shape throws
    /// a `CheckpointError` listing every problem, each prefixed with `source`. With
    /// `strict == false`, missing and extra tensors are ignored (shapes must still match).
    public func loadStateDict(_ tensors: [String: Tensor], source: String = "state dict", strict: Bool = true) throws {
        let own = stateDict()
        var problems: [String] = []
        var known = Set<String>()
        for (name, p) in own {
            known.insert(name)
            guard let t = tensors[name] else {
                if strict { problems.append("\(source): missing tensor '\(name)' (model expects shape \(p.shape))") }
                continue
            }
            if t.shape != p.shape {
                problems.append("\(source): tensor '\(name)' has shape \(t.shape), model expects \(p.shape)")
            }
        }
        if strict {
            for name in tensors.keys.sorted() where !known.contains(name) {
                problems.append("\(source): unexpected tensor '\(name)' (shape \(tensors[name]!.shape)) that the model does not have")
            }
        }
        if !problems.isEmpty { throw CheckpointError(problems: problems) }
        for (name, p) in own {
            guard let t = tensors[name] else { continue }
            p.storage.ptr.update(from: t.storage.ptr, count: p.count)
        }
    }
}

/// Writes the model's weights (names and shapes as in `stateDict()`, F32) with `metadata`
/// (model config, stage, step, tokenizer, ...) to a safetensors file, atomically, with the
/// content checksum. A NaN or infinite weight is refused (nothing is written).
/// `format: pt` is added unless given, so tools that insist on it (transformers) accept the file.
public func saveCheckpoint(_ model: Module, metadata: [String: String] = [:], to url: URL) throws {
    var meta = metadata
    if meta["format"] == nil { meta["format"] = "pt" }
    try Safetensors.write(model.stateDict(), metadata: meta, requireFinite: true, to: url)
}

/// Loads weights saved by `saveCheckpoint` (or by Python's safetensors from a torch
/// state_dict with the same names) into `model` and returns the file's metadata.
@discardableResult
public func loadCheckpoint(into model: Module, from url: URL, strict: Bool = true) throws -> [String: String] {
    let archive = try readCheckpointArchive(url)
    try model.loadStateDict(archive.tensors, source: "checkpoint \(url.path)", strict: strict)
    return archive.metadata
}

/// A checkpoint file read whole: checksum verified when present, every value finite.
public func readCheckpointArchive(_ url: URL) throws -> SafetensorsArchive {
    let archive = try Safetensors.read(url)
    try archive.checkFinite(path: url.path)
    return archive
}

/// EMA shadow weights by parameter name, with the update count and decay.
public struct EMAState {
    public var shadow: [String: Tensor]
    public var updates: Int
    public var decay: Double
    /// The file it was read from, named in errors.
    public var source: String?
    public init(shadow: [String: Tensor], updates: Int, decay: Double, source: String? = nil) {
        self.shadow = shadow
        self.updates = updates
        self.decay = decay
        self.source = source
    }
}

extension EMA {
    public func exportState() -> EMAState {
        var s: [String: Tensor] = [:]
        for (name, t) in namedShadow() { s[name] = Tensor(shape: t.shape, storage: t.storage.copy()) }
        return EMAState(shadow: s, updates: updates, decay: decay)
    }

    /// Restores shadow, update count and decay; throws (changing nothing) on a name or shape mismatch.
    public func importState(_ state: EMAState) throws {
        try load(shadow: state.shadow, updates: state.updates, source: state.source)
        decay = state.decay
    }
}

/// Everything an exact resume needs: the step, the weights, optimizer moments, EMA shadow and
/// RNG states, in ONE file, "<name>.state.safetensors" beside "<name>.safetensors". Being one
/// atomic write, it is the commit point of a checkpoint: a kill at any moment leaves the
/// previous complete state or the new one. "<name>.safetensors" is an export of the same
/// weights for users (PyTorch names, loadable by Python's safetensors), written after it and
/// rewritten from it on resume, so a kill between the two writes costs nothing.
/// Tensors: "model.<param>", "optimizer.exp_avg.<param>", "optimizer.exp_avg_sq.<param>",
/// "ema.<param>"; metadata: "step", "rng.<key>" (JSON), "optimizer.steps" (JSON),
/// "ema.updates", "ema.decay", "extra.<key>", and the export's metadata as "weights.<key>".
/// Version 1 files (no weights; they came with a separate weights file) still load.
public struct TrainingState {
    public static let formatName = "reflow-training-state"
    public static let formatVersion = "2"
    static let readableVersions: Set<String> = ["1", "2"]

    public var step: Int
    public var rngs: [String: RNG]
    public var optimizer: OptimizerState?
    public var ema: EMAState?
    /// Free-form scalars (stored as "extra.<key>").
    public var extra: [String: String]
    /// The model's weights by name, and the metadata of their export (nil in version 1 files).
    public var weights: [(String, Tensor)]?
    public var weightsMetadata: [String: String] = [:]

    public init(step: Int, rngs: [String: RNG] = [:], optimizer: OptimizerState? = nil,
                ema: EMAState? = nil, extra: [String: String] = [:]) {
        self.step = step
        self.rngs = rngs
        self.optimizer = optimizer
        self.ema = ema
        self.extra = extra
    }

    /// "<dir>/<name>.state.safetensors" for "<dir>/<name>.safetensors".
    public static func url(besideCheckpoint url: URL) -> URL {
        let base = url.pathExtension == "safetensors" ? url.deletingPathExtension() : url
        return base.deletingLastPathComponent().appendingPathComponent(base.lastPathComponent + ".state.safetensors")
    }

    public func save(to url: URL) throws {
        var tensors: [(String, Tensor)] = []
        var meta: [String: String] = ["format": TrainingState.formatName, "version": TrainingState.formatVersion,
                                      "step": "\(step)"]
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        for (k, r) in rngs { meta["rng.\(k)"] = String(decoding: try enc.encode(r), as: UTF8.self) }
        if let opt = optimizer {
            var steps: [String: Int] = [:]
            for name in opt.entries.keys.sorted() {
                let e = opt.entries[name]!
                tensors.append(("optimizer.exp_avg.\(name)", e.expAvg))
                tensors.append(("optimizer.exp_avg_sq.\(name)", e.expAvgSq))
                steps[name] = e.step
            }
            meta["optimizer.steps"] = String(decoding: try enc.encode(steps), as: UTF8.self)
        }
        if let ema {
            for name in ema.shadow.keys.sorted() { tensors.append(("ema.\(name)", ema.shadow[name]!)) }
            meta["ema.updates"] = "\(ema.updates)"
            meta["ema.decay"] = "\(ema.decay)"
        }
        for (k, v) in extra { meta["extra.\(k)"] = v }
        if let weights {
            for (name, t) in weights { tensors.append(("model.\(name)", t)) }
            for (k, v) in weightsMetadata { meta["weights.\(k)"] = v }
        }
        try Safetensors.write(tensors, metadata: meta, requireFinite: true, to: url)
    }

    public static func load(from url: URL) throws -> TrainingState {
        let a = try readCheckpointArchive(url)
        let src = "training state \(url.path)"
        let meta = a.metadata
        guard meta["format"] == formatName else {
            throw CheckpointError("\(src): not a training-state file (metadata format is \(meta["format"].map { "'\($0)'" } ?? "missing"), expected '\(formatName)')")
        }
        guard let version = meta["version"], readableVersions.contains(version) else {
            throw CheckpointError("\(src): unsupported version \(meta["version"] ?? "missing") (this build reads \(readableVersions.sorted().joined(separator: ", ")))")
        }
        guard let stepText = meta["step"], let step = Int(stepText), step >= 0 else {
            throw CheckpointError("\(src): metadata 'step' is missing or not a non-negative integer")
        }
        var state = TrainingState(step: step)
        let dec = JSONDecoder()
        for (k, v) in meta {
            if k.hasPrefix("rng.") {
                do { state.rngs[String(k.dropFirst(4))] = try dec.decode(RNG.self, from: Data(v.utf8)) } catch {
                    throw CheckpointError("\(src): metadata '\(k)' is not an RNG state ({\"seed\": .., \"counter\": ..}): \(v)")
                }
            } else if k.hasPrefix("extra.") {
                state.extra[String(k.dropFirst(6))] = v
            } else if k.hasPrefix("weights.") {
                state.weightsMetadata[String(k.dropFirst(8))] = v
            }
        }
        var used = Set<String>()
        if let stepsJSON = meta["optimizer.steps"] {
            let steps: [String: Int]
            do { steps = try dec.decode([String: Int].self, from: Data(stepsJSON.utf8)) } catch {
                throw CheckpointError("\(src): metadata 'optimizer.steps' is not a JSON object of integers")
            }
            var opt = OptimizerState()
            for (name, s) in steps {
                guard s >= 0 else { throw CheckpointError("\(src): metadata 'optimizer.steps' has negative step \(s) for '\(name)'") }
                let k1 = "optimizer.exp_avg.\(name)", k2 = "optimizer.exp_avg_sq.\(name)"
                guard let m = a.tensors[k1] else { throw CheckpointError("\(src): missing tensor '\(k1)'") }
                guard let v = a.tensors[k2] else { throw CheckpointError("\(src): missing tensor '\(k2)'") }
                guard m.shape == v.shape else {
                    throw CheckpointError("\(src): tensor '\(k2)' has shape \(v.shape), but '\(k1)' has \(m.shape)")
                }
                opt.entries[name] = (m, v, s)
                used.insert(k1); used.insert(k2)
            }
            state.optimizer = opt
        }
        if let u = meta["ema.updates"] {
            guard let updates = Int(u), updates >= 0, let d = meta["ema.decay"], let decay = Double(d), decay >= 0, decay <= 1 else {
                throw CheckpointError("\(src): metadata 'ema.updates' / 'ema.decay' are not a count and a decay in [0, 1]")
            }
            var shadow: [String: Tensor] = [:]
            for name in a.names where name.hasPrefix("ema.") {
                shadow[String(name.dropFirst(4))] = a.tensors[name]!
                used.insert(name)
            }
            state.ema = EMAState(shadow: shadow, updates: updates, decay: decay, source: src)
        }
        if version != "1" {
            var w: [(String, Tensor)] = []
            for name in a.names where name.hasPrefix("model.") {
                w.append((String(name.dropFirst(6)), a.tensors[name]!))
                used.insert(name)
            }
            state.weights = w
        }
        if let extra = a.names.first(where: { !used.contains($0) }) {
            throw CheckpointError("\(src): unexpected tensor '\(extra)'")
        }
        return state
    }
}

/// Saves a checkpoint for an exact resume: the training state with the weights (the commit
/// point, one atomic write), then the weights alone at `url` for users (see `TrainingState`).
public func saveTrainingCheckpoint(_ model: Module, state: TrainingState, metadata: [String: String] = [:], to url: URL) throws {
    var meta = metadata
    meta["step"] = "\(state.step)"
    if meta["format"] == nil { meta["format"] = "pt" }
    var full = state
    full.weights = model.stateDict()
    full.weightsMetadata = meta
    try full.save(to: TrainingState.url(besideCheckpoint: url))
    try saveCheckpoint(model, metadata: meta, to: url)
}

/// Loads a checkpoint saved by `saveTrainingCheckpoint` into `model` and returns (the weights'
/// metadata, the training state), changing nothing on error. The weights come from the state
/// file; the export at `url` is rewritten from it, since a kill between the two writes may
/// have left it one save behind (or a temporary, which `removeStaleTemporaries` cleans).
/// Version-1 state files have no weights: then `url` supplies them, and must be of the same step.
public func loadTrainingCheckpoint(into model: Module, from url: URL) throws -> (metadata: [String: String], state: TrainingState) {
    let stateURL = TrainingState.url(besideCheckpoint: url)
    let state = try TrainingState.load(from: stateURL)
    if let w = state.weights {
        try model.loadStateDict(Dictionary(w, uniquingKeysWith: { a, _ in a }), source: "training state \(stateURL.path)")
        try saveCheckpoint(model, metadata: state.weightsMetadata, to: url)
        return (state.weightsMetadata, state)
    }
    let archive = try readCheckpointArchive(url)
    if let s = archive.metadata["step"], s != "\(state.step)" {
        throw CheckpointError("checkpoint \(url.path): weights are from step \(s) but \(stateURL.path) is from step \(state.step) (interrupted save of an old-format checkpoint)")
    }
    try model.loadStateDict(archive.tensors, source: "checkpoint \(url.path)")
    return (archive.metadata, state)
}
