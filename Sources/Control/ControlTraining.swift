import Foundation
import Autograd
import Datasets
import Diffusion
import Flow
import Generation
import Models
import NN
import TensorCore
import Training

/// Dataset batches whose control images (the operator applied to x1) become the attached
/// ControlNet's hint before the trainer's forward pass: the trainer stays unaware of controls.
public final class ControlSource: TrainingSource {
    let base: DatasetSource, op: ControlOperator, attachment: ControlAttachment

    public init(base: DatasetSource, op: ControlOperator, attachment: ControlAttachment) {
        self.base = base; self.op = op; self.attachment = attachment
    }

    public var itemShape: [Int] { base.itemShape }

    public func batch(step: Int, size: Int, slice: Range<Int>) throws -> (x0: Tensor, x1: Tensor, captions: [String]) {
        let b = try base.batch(step: step, size: size, slice: slice)
        attachment.hint = try op(b.x1)
        return b
    }
}

/// A ControlNet for `model` (loaded from `base`), its encoder copied from the base's, attached
/// with `scale`; the base's parameters are frozen (no gradients are computed for them).
public func newControlNet(on model: FlowModel, base: String, op: ControlOperator, scale: Float, seed: UInt64) throws
    -> (ControlNet, ControlAttachment) {
    guard let unet = model.net as? UNet else {
        throw ModelError("controlnet: base \(base) is an \(model.spec.kind) model; a ControlNet copies a U-Net's encoder (model.kind: unet)")
    }
    try op.validate(source: "controlnet")
    _ = try op(Tensor.zeros([1] + model.spec.itemShape))  // a silhouette factor that does not divide the size fails here
    let net = try ControlNet(spec: model.spec, hintChannels: 1, seed: seed)
    try net.copyEncoder(from: unet)
    for p in model.parameters() { p.requiresGrad = false }
    let attachment = ControlAttachment(net: net, scale: scale)
    try attachment.attach(to: model)
    return (net, attachment)
}

/// The stage's grid: control | `base` with the ControlNet at its trained scale, for `held`'s
/// images and captions, on (seed, i) noise.
public func writeControlNetSamples(_ url: URL, base: String, held: DataBatch, path: String, solver: SolverSettings,
                                   sampler: DiffusionSamplerKind, guidance: Float, seed: UInt64) throws {
    let (model, meta) = try FlowModel.load(from: URL(fileURLWithPath: base))
    let cn = try loadControlNet(url, base: model, baseURL: URL(fileURLWithPath: base))
    let controls = try cn.op(Tensor(shape: held.shape, storage: held.images))
    let method = try SampleMethod.forCheckpoint(metadata: meta, source: base, solver: solver, sampler: sampler)
    let x0 = itemNoise(seed: seed, first: 0, count: controls.shape[0], itemShape: model.spec.itemShape)
    let r = try generateControlled(model, control: ControlAttachment(net: cn.net, scale: cn.trainedScale), controls: controls, x0: x0,
                                   prompts: held.captions, method: method, guidance: guidance, batchSize: controls.shape[0])
    try writeControlGrid(path: path, controls: controls, outputs: [r.images])
}
