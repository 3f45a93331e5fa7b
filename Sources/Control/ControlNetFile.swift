import Foundation
import Autograd
import Formats
import Models
import NN
import TensorCore

/// Metadata keys of a ControlNet file (beside the base's `model_spec` and `tokenizer`, which
/// the trainer writes). Its tensors are the `ControlNet` module's, under its own names.
public enum ControlNetKey {
    public static let role = "role"
    public static let roleValue = "controlnet"
    /// The control operator as JSON (`ControlOperator.json()`).
    public static let controlOperator = "control_operator"
    public static let controlChannels = "control_channels"
    /// The residuals' weight in training: what `--controlnet FILE` uses without `:scale`.
    public static let controlScale = "control_scale"
    /// The checkpoint the ControlNet was trained on, and its SHA-256.
    public static let basePath = "base_path"
    public static let baseSHA256 = "base_sha256"
}

/// A ControlNet read from its file and checked against the base it is applied to.
public struct LoadedControlNet {
    public let net: ControlNet
    public let op: ControlOperator
    public let metadata: [String: String]

    /// The scale it was trained with (1 when the file does not say).
    public var trainedScale: Float { metadata[ControlNetKey.controlScale].flatMap(Float.init).flatMap { $0.isFinite ? $0 : nil } ?? 1 }
}

/// A `--controlnet FILE[:scale]` argument.
public struct ControlNetArgument: Equatable {
    public var path: String
    /// nil: the scale the ControlNet was trained with.
    public var scale: Float?

    /// "file.safetensors" or "file.safetensors:0.5".
    public init(parsing s: String) throws {
        if let colon = s.lastIndex(of: ":"), let v = Float(s[s.index(after: colon)...]) {
            guard v.isFinite else { throw ModelError("--controlnet \(s): the scale must be a finite number") }
            path = String(s[..<colon]); scale = v
        } else {
            path = s; scale = nil
        }
        guard !path.isEmpty else { throw ModelError("--controlnet \(s): give a file, FILE or FILE:scale") }
    }
}

/// Reads a ControlNet file for `base` (loaded from `baseURL`). Refuses, naming file and layer,
/// a file that is not a ControlNet, one trained on a base that is neither `baseURL` nor one of
/// the checkpoints it was trained from, and one whose layers do not fit `base`'s U-Net.
public func loadControlNet(_ url: URL, base: FlowModel, baseURL: URL) throws -> LoadedControlNet {
    let archive = try readCheckpointArchive(url)
    let m = archive.metadata
    guard m[ControlNetKey.role] == ControlNetKey.roleValue else {
        throw ModelError("\(url.path) is not a ControlNet (its metadata has no role 'controlnet'); make one with reflow-train --stage controlnet")
    }
    guard let opJSON = m[ControlNetKey.controlOperator], let chText = m[ControlNetKey.controlChannels],
          let channels = Int(chText), (1...16).contains(channels), let baseSHA = m[ControlNetKey.baseSHA256] else {
        throw ModelError("ControlNet \(url.path): metadata lacks '\(ControlNetKey.controlOperator)', '\(ControlNetKey.controlChannels)' (1...16) or '\(ControlNetKey.baseSHA256)'")
    }
    let op = try ControlOperator.fromJSON(opJSON, source: "ControlNet \(url.path): metadata '\(ControlNetKey.controlOperator)'")
    let lineage = try checkpointLineage(baseURL)
    guard lineage.contains(where: { $0.sha256 == baseSHA }) else {
        let chain = lineage.map { "\($0.path) (\($0.sha256.prefix(12)))" }.joined(separator: " <- ")
        throw ModelError("ControlNet \(url.path) was trained on \(m[ControlNetKey.basePath] ?? "a base") with SHA-256 \(baseSHA.prefix(12)), but \(baseURL.path) is neither that checkpoint nor trained from it (lineage: \(chain))")
    }
    guard base.spec.kind == .unet, let unet = base.net as? UNet else {
        throw ModelError("ControlNet \(url.path) needs a U-Net base; \(baseURL.path) is a \(base.spec.kind) model")
    }
    let net = try ControlNet(spec: unet.spec, hintChannels: channels, seed: 0)
    do {
        try net.loadStateDict(archive.tensors, source: "ControlNet \(url.path)")
    } catch let e as CheckpointError {
        throw ModelError("ControlNet \(url.path) does not fit the U-Net of \(baseURL.path):\n\(e.description)")
    }
    return LoadedControlNet(net: net, op: op, metadata: m)
}

/// A ControlNet attached to a base U-Net: each forward pass of the base adds the ControlNet's
/// residuals for the current `hint`. A hint of B items serves a batch of k*B (one control for
/// every sample, or the doubled batch of classifier-free guidance, which repeats the batch).
public final class ControlAttachment: UNetControl {
    public let net: ControlNet
    public var scale: Float
    public var hint: Tensor?

    public init(net: ControlNet, scale: Float) { self.net = net; self.scale = scale }

    public func residuals(_ x: Tensor, t: Tensor, text: EncodedText, training: Bool) throws -> (skips: [Tensor], mid: Tensor) {
        guard let hint else { throw ModelError("ControlNet attached without a control image") }
        if net.isTraining != training { net.train(training) }
        let n = x.shape[0], b = hint.shape[0]
        guard b >= 1, n % b == 0 else {
            throw ShapeError(op: "ControlNet", "\(b) control images for a batch of \(n)")
        }
        let h = n == b ? hint : try Tensor.concat([Tensor](repeating: hint, count: n / b), axis: 0)
        return try net(x, t: t, text: text, hint: h, scale: scale)
    }

    /// Attaches to `model`'s U-Net (replacing any ControlNet there).
    public func attach(to model: FlowModel) throws {
        guard let unet = model.net as? UNet else { throw ModelError("a ControlNet needs a U-Net base, not \(model.spec.kind)") }
        unet.control = self
    }

    /// Removes whatever ControlNet `model` has.
    public static func detach(from model: FlowModel) { (model.net as? UNet)?.control = nil }
}
