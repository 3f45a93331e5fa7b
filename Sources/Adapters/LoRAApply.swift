import Foundation
import Formats
import Models
import NN
import Reporting

/// One `--lora FILE[:scale]` argument.
public struct LoRAUse: Equatable, Sendable {
    public let path: String
    public let scale: Float

    public init(path: String, scale: Float = 1) { self.path = path; self.scale = scale }

    /// Parses `FILE` or `FILE:scale`. A suffix after the last ':' is the scale when the whole
    /// argument is not itself an existing file; it must be a finite number.
    public init(parsing text: String) throws {
        guard !text.isEmpty else { throw LoRAError("LoRA argument is empty: give FILE or FILE:scale") }
        if let colon = text.lastIndex(of: ":"), !FileManager.default.fileExists(atPath: text) {
            let file = String(text[..<colon]), s = String(text[text.index(after: colon)...])
            guard !file.isEmpty else { throw LoRAError("LoRA '\(text)': no file before ':'; give FILE or FILE:scale") }
            guard let v = Float(s), v.isFinite else {
                throw LoRAError("LoRA '\(text)': scale '\(s)' is not a number; give FILE or FILE:scale, e.g. \(file):0.8")
            }
            self.init(path: file, scale: v)
        } else {
            self.init(path: text)
        }
    }

    public var description: String { scale == 1 ? path : "\(path):\(scale)" }
}

/// Applies adapter files to a loaded model as extra paths beside its layers (the weights stay
/// as they are): what `--lora` does at load time. Returns the metadata lines worth recording.
@discardableResult
public func applyLoRAs(_ uses: [LoRAUse], to model: FlowModel, checkpoint: URL, allowOtherBase: Bool) throws -> [LoRASet] {
    guard !uses.isEmpty else { return [] }
    let lineage = try checkpointLineage(checkpoint)
    let sha = lineage[0].sha256, ancestors = lineage.dropFirst().map(\.sha256)
    var sets: [LoRASet] = []
    for use in uses {
        let (set, meta) = try LoRASet.load(URL(fileURLWithPath: use.path), for: model, baseSHA256: sha,
                                           basePath: checkpoint.path, baseAncestors: ancestors, allowOtherBase: allowOtherBase)
        set.setScale(use.scale)
        try set.attach(to: model)
        let trainedOn = meta[LoRAKey.baseSHA256]
        let how = trainedOn == sha ? "" : trainedOn.map { ancestors.contains($0) } == true
            ? " (trained on \(meta[LoRAKey.baseCheckpoint] ?? "?"), which this checkpoint was trained from)"
            : " (trained on \(meta[LoRAKey.baseCheckpoint] ?? "another checkpoint"))"
        Log.info("applied LoRA \(use.path) (rank \(set.rank), alpha \(set.alpha), scale \(use.scale), \(set.layers.count) layers) to \(checkpoint.path)" + how)
        sets.append(set)
    }
    return sets
}

/// `reflow-lora merge`: the base checkpoint with W += scale · (α/r) · B·A for every adapter,
/// written as an ordinary checkpoint (its metadata lists the merged adapters). Returns the
/// number of weights changed.
@discardableResult
public func mergeLoRAs(base: String, uses: [LoRAUse], output: String, allowOtherBase: Bool) throws -> Int {
    guard !uses.isEmpty else { throw LoRAError("give at least one LoRA file to merge") }
    let baseURL = URL(fileURLWithPath: base)
    guard FileManager.default.fileExists(atPath: base) else { throw LoRAError("base checkpoint \(base) not found") }
    let (model, meta) = try FlowModel.load(from: baseURL)
    let lineage = try checkpointLineage(baseURL)
    let sha = lineage[0].sha256, ancestors = lineage.dropFirst().map(\.sha256)
    var changed = Set<String>()
    var merged: [String] = []
    for use in uses {
        let (set, lmeta) = try LoRASet.load(URL(fileURLWithPath: use.path), for: model, baseSHA256: sha,
                                            basePath: base, baseAncestors: ancestors, allowOtherBase: allowOtherBase)
        set.setScale(use.scale)
        try set.merge(into: model)
        changed.formUnion(set.layers.map(\.name))
        merged.append("\(use.path):\(use.scale) (sha256 \(try SHA256.hex(file: use.path)), base sha256 \(lmeta[LoRAKey.baseSHA256] ?? "?"))")
    }
    var out = meta
    out["merged_loras"] = merged.joined(separator: "; ")
    out["merged_base"] = base
    out["merged_base_sha256"] = sha
    out.removeValue(forKey: "format")
    // Not the stage output the chain made: its skip-if-up-to-date check must not take it for one.
    out.removeValue(forKey: "config_hash")
    try saveCheckpoint(model, metadata: out, to: URL(fileURLWithPath: output))
    return changed.count
}
