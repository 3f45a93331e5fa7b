import Foundation
import Autograd
import Formats
import Generation
import Models
import Reporting
import Sampling
import TensorCore

/// `generate` with a ControlNet: item i follows control i (`controls` [N, ...]), or every item
/// the single control of a [1, ...] tensor. Batches are cut as `generate` cuts them, so the noise,
/// prompts and controls of a row stay together.
public func generateControlled(_ model: FlowModel, control: ControlAttachment, controls: Tensor, x0: Tensor, prompts: [String],
                               method: SampleMethod, guidance: Float, batchSize: Int) throws -> (images: Tensor, nfe: Int) {
    let n = x0.shape[0]
    guard controls.shape[0] == n || controls.shape[0] == 1 else {
        throw ShapeError(op: "generateControlled", "\(controls.shape[0]) controls for \(n) samples (give one, or one per sample)")
    }
    try control.attach(to: model)
    defer { ControlAttachment.detach(from: model); control.hint = nil }
    var parts: [Tensor] = [], nfe = 0, lo = 0
    while lo < n {
        let hi = min(n, lo + batchSize)
        control.hint = controls.shape[0] == 1 ? controls : try controls.slice(axis: 0, range: lo..<hi)
        let r = try generate(model, x0: x0.slice(axis: 0, range: lo..<hi), prompts: Array(prompts[lo..<hi]),
                             method: method, guidance: guidance, batchSize: hi - lo)
        parts.append(r.images)
        nfe = max(nfe, r.nfe)
        lo = hi
    }
    return (parts.count == 1 ? parts[0] : try Tensor.concat(parts, axis: 0), nfe)
}

/// A control image from a PNG: grey (or the channel mean), 0...255 mapped to 0...1, at the
/// model's resolution. Returns [1, 1, H, W].
public func readControlPNG(_ path: String, height: Int, width: Int) throws -> Tensor {
    let png = try PNGImage.read(path)
    guard png.height == height, png.width == width else {
        throw ModelError("--control \(path): the image is \(png.width)x\(png.height), the model makes \(width)x\(height) images")
    }
    let s = Storage(uninitializedCount: height * width)
    let c = png.channels, colour = min(c, 3)  // an alpha channel is not part of the picture
    for p in 0..<(height * width) {
        var v: Float = 0
        for k in 0..<colour { v += Float(png.pixels[p * c + k]) }
        s.ptr[p] = v / Float(colour) / 255
    }
    return Tensor(shape: [1, 1, height, width], storage: s)
}

/// `reflow-sample --controlnet FILE[:scale] --control IMAGE`: the grid of `runSample`, every
/// sample following the one control image. Returns NFE and seconds.
@discardableResult
public func runControlledSample(_ r: SampleRequest, controlNet: ControlNetArgument, control: String) throws -> (nfe: Int, seconds: Double) {
    guard r.interpolate == 0 else { throw ModelError("--interpolate does not take a ControlNet (--controlnet)") }
    let (model, meta) = try FlowModel.load(from: URL(fileURLWithPath: r.checkpoint))
    try checkSamplingFlags(metadata: meta, checkpoint: r.checkpoint, solverNamed: r.solverNamed, samplerNamed: r.samplerNamed)
    let method = try SampleMethod.forCheckpoint(metadata: meta, source: r.checkpoint, solver: r.solver, sampler: r.sampler)
    if !r.allowUnknown { try checkPromptWords(r.prompts, tokenizer: model.tokenizer) }
    let cn = try loadControlNet(URL(fileURLWithPath: controlNet.path), base: model, baseURL: URL(fileURLWithPath: r.checkpoint))
    let hint = try readControlPNG(control, height: model.spec.height, width: model.spec.width)
    let all = r.prompts.flatMap { [String](repeating: $0, count: r.perPrompt) }
    let x0 = itemNoise(seed: r.seed, first: 0, count: all.count, itemShape: model.spec.itemShape)
    let start = Date()
    let out = try generateControlled(model, control: ControlAttachment(net: cn.net, scale: controlNet.scale ?? cn.trainedScale),
                                     controls: hint, x0: x0, prompts: all, method: method, guidance: r.guidance, batchSize: 256)
    let secs = Date().timeIntervalSince(start)
    try writeSampleImage(path: r.output, images: out.images, columns: r.columns ?? (r.perPrompt > 1 ? r.perPrompt : min(all.count, 10)))
    return (out.nfe, secs)
}
