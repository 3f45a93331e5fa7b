import Foundation
import Autograd
import Formats
import Models
import NN
import TensorCore

// The adapter file: safetensors holding only the factors, named as PEFT and diffusers name LoRA
// tensors (`<layer>.lora_A.weight` [r, in(, k, k)], `<layer>.lora_B.weight` [out, r(, 1, 1)]),
// where <layer> is the base checkpoint's dotted name of the adapted layer (its weight is
// `<layer>.weight` there). The metadata says what it adapts and how strongly.

public enum LoRAKey {
    public static let formatVersion = "lora_format_version"
    public static let baseSHA256 = "base_sha256"
    public static let baseCheckpoint = "base_checkpoint"
    public static let baseStage = "base_stage"
    public static let rank = "rank"
    /// PEFT's adapter_config.json calls it lora_alpha; the applied scale is alpha / rank.
    public static let alpha = "lora_alpha"
    /// Comma-separated layer names (PEFT's target_modules, here the full names).
    public static let targetModules = "target_modules"
    /// Comma-separated kinds the adapters were made for (linear, attention, conv).
    public static let targets = "targets"
}

extension LoRASet {
    public static let formatVersion = "1"

    /// Writes the adapters (never non-finite) with the base's identity, atomically.
    public func save(to url: URL, base: String, baseSHA256: String, baseStage: String, extra: [String: String] = [:]) throws {
        var meta = extra
        meta["format"] = "pt"
        meta[LoRAKey.formatVersion] = LoRASet.formatVersion
        meta[LoRAKey.baseSHA256] = baseSHA256
        meta[LoRAKey.baseCheckpoint] = base
        meta[LoRAKey.baseStage] = baseStage
        meta[LoRAKey.rank] = String(rank)
        meta[LoRAKey.alpha] = String(alpha)
        meta[LoRAKey.targetModules] = layers.map(\.name).joined(separator: ",")
        meta[LoRAKey.targets] = targets.map(\.rawValue).joined(separator: ",")
        try Safetensors.write(stateDict(), metadata: meta, requireFinite: true, to: url)
    }

    /// Reads an adapter file for `model`, checking everything before anything is applied: the
    /// format, rank and alpha, that every adapted layer exists in the model with the shapes the
    /// factors need (errors name the layer) and, when `baseSHA256` is given, that the file was
    /// trained on that checkpoint or on one it was trained from (`baseAncestors`: the teacher's
    /// LoRA on its 2-RF or one-step student), unless `allowOtherBase` (any checkpoint of the same
    /// architecture). Every error names the file.
    public static func load(_ url: URL, for model: FlowModel, baseSHA256: String? = nil, basePath: String = "the checkpoint",
                            baseAncestors: [String] = [], allowOtherBase: Bool = false) throws -> (set: LoRASet, metadata: [String: String]) {
        let path = url.path
        guard FileManager.default.fileExists(atPath: path) else { throw LoRAError("LoRA file \(path) not found") }
        let archive = try readCheckpointArchive(url)
        let meta = archive.metadata
        guard let version = meta[LoRAKey.formatVersion] else {
            throw LoRAError("\(path) is not a reflow LoRA file (its metadata has no '\(LoRAKey.formatVersion)'); make one with reflow-train --stage lora")
        }
        guard version == formatVersion else {
            throw LoRAError("LoRA file \(path): format version \(version), this build reads \(formatVersion)")
        }
        guard let rank = meta[LoRAKey.rank].flatMap({ Int($0) }), rank >= 1 else {
            throw LoRAError("LoRA file \(path): metadata '\(LoRAKey.rank)' is \(meta[LoRAKey.rank].map { "'\($0)'" } ?? "missing"), need a positive integer")
        }
        guard let alpha = meta[LoRAKey.alpha].flatMap({ Float($0) }), alpha > 0, alpha.isFinite else {
            throw LoRAError("LoRA file \(path): metadata '\(LoRAKey.alpha)' is \(meta[LoRAKey.alpha].map { "'\($0)'" } ?? "missing"), need a positive number")
        }
        if let want = baseSHA256, let have = meta[LoRAKey.baseSHA256], want != have, !baseAncestors.contains(have), !allowOtherBase {
            throw LoRAError("LoRA file \(path) was trained on \(meta[LoRAKey.baseCheckpoint] ?? "another checkpoint") (sha256 \(have)), not on \(basePath) (sha256 \(want)) nor on a checkpoint it was trained from (\(baseAncestors.isEmpty ? "it records none" : baseAncestors.map { String($0.prefix(12)) }.joined(separator: " <- "))); pass --allow-lora-transfer to apply it to another checkpoint of the same architecture")
        }
        // Group the factors by layer.
        var factors: [String: (a: Tensor?, b: Tensor?)] = [:]
        for (name, t) in archive.tensors {
            if name.hasSuffix(".lora_A.weight") {
                factors[String(name.dropLast(".lora_A.weight".count)), default: (nil, nil)].a = t
            } else if name.hasSuffix(".lora_B.weight") {
                factors[String(name.dropLast(".lora_B.weight".count)), default: (nil, nil)].b = t
            } else {
                throw LoRAError("LoRA file \(path): tensor '\(name)' is not a LoRA factor (<layer>.lora_A.weight or <layer>.lora_B.weight)")
            }
        }
        guard !factors.isEmpty else { throw LoRAError("LoRA file \(path) holds no adapters") }
        let byName = Dictionary(model.adaptableLayers(), uniquingKeysWith: { a, _ in a })
        var order = meta[LoRAKey.targetModules].map { $0.split(separator: ",").map(String.init) } ?? []
        if Set(order) != Set(factors.keys) { order = factors.keys.sorted() }
        var layers: [(name: String, adapter: LoRALayer)] = []
        for name in order {
            let f = factors[name]!
            guard let a = f.a, let b = f.b else {
                throw LoRAError("LoRA file \(path): layer '\(name)' has \(f.a == nil ? "no lora_A.weight" : "no lora_B.weight")")
            }
            guard let layer = byName[name] else {
                throw LoRAError("LoRA file \(path): layer '\(name)' is not a linear or convolution layer of \(basePath)'s velocity network (a LoRA for another architecture?)")
            }
            let want: (a: [Int], b: [Int], kind: LoRALayer.Kind)
            switch layer {
            case .linear(let l, _):
                want = ([rank, l.inFeatures], [l.outFeatures, rank], .linear)
            case .conv(let c):
                want = ([rank, c.inChannels, c.kernel, c.kernel], [c.outChannels, rank, 1, 1], .conv(stride: c.stride, padding: c.padding))
            }
            let (wantA, wantB, kind) = want
            guard a.shape == wantA, b.shape == wantB else {
                throw LoRAError("LoRA file \(path): layer '\(name)' does not fit \(basePath): lora_A.weight \(a.shape) and lora_B.weight \(b.shape), but its weight \(layer.weight.shape) at rank \(rank) needs \(wantA) and \(wantB)")
            }
            layers.append((name, LoRALayer(kind: kind, a: a, b: b, scale: alpha / Float(rank))))
        }
        let targets = (meta[LoRAKey.targets] ?? "").split(separator: ",").compactMap { LoRATarget(rawValue: String($0)) }
        return (LoRASet(rank: rank, alpha: alpha, targets: targets, layers: layers), meta)
    }
}
