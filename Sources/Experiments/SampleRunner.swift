import Foundation
import Autograd
import Data
import Flow
import Models
import TensorCore

/// Prompts from a file: one per line. An empty line is an error (it would silently mean
/// "unconditional"); write the unconditional prompt explicitly as `<empty>`.
public func readPromptFile(_ path: String) throws -> [String] {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
        throw ModelError("prompt file \(path): cannot be read")
    }
    var lines = text.components(separatedBy: "\n")
    if lines.last == "" { lines.removeLast() }
    var out: [String] = []
    for (i, raw) in lines.enumerated() {
        let line = raw.trimmingCharacters(in: .whitespaces)
        if line.isEmpty {
            throw ModelError("prompt file \(path): line \(i + 1) is empty (write <empty> for the unconditional prompt)")
        }
        out.append(line == "<empty>" ? "" : line)
    }
    if out.isEmpty { throw ModelError("prompt file \(path): no prompts") }
    return out
}

/// Refuses prompts with words the model never saw (they would all become <unk>).
public func checkPromptWords(_ prompts: [String], tokenizer: Tokenizer) throws {
    for (i, p) in prompts.enumerated() {
        let unknown = tokenizer.unknownWords(in: p)
        if !unknown.isEmpty {
            let known = tokenizer.words.dropFirst(3).prefix(12).joined(separator: ", ")
            throw ModelError("prompt \(i + 1) \"\(p)\": unknown word\(unknown.count > 1 ? "s" : "") \(unknown.map { "'\($0)'" }.joined(separator: ", ")) not in the model's vocabulary of \(tokenizer.vocabularySize - 3) words (e.g. \(known), ...); pass --allow-unknown to map them to <unk>")
        }
    }
}

/// Spherical interpolation between two Gaussian noises: keeps each frame's norm statistics
/// those of a standard normal (a straight line would shrink them mid-way).
public func slerpFrames(_ a: Tensor, _ b: Tensor, frames: Int) throws -> Tensor {
    guard a.shape == b.shape else { throw ShapeError(op: "slerp", "noise shapes differ: \(a.shape) vs \(b.shape)") }
    var parts: [Tensor] = []
    for k in 0..<frames {
        let th = Float(k) / Float(max(frames - 1, 1)) * Float.pi / 2
        parts.append(try a * Foundation.cos(th) + b * Foundation.sin(th))
    }
    return try Tensor.concat(parts, axis: 0)
}

public struct SampleRequest {
    public var checkpoint: String
    public var prompts: [String]
    public var steps = 25
    public var solver = SolverName.euler
    public var guidance: Float = 1.5
    public var seed: UInt64 = 0
    public var perPrompt = 1
    public var columns: Int? = nil
    public var output: String
    public var interpolate = 0
    public var allowUnknown = false
    public init(checkpoint: String, prompts: [String], output: String) {
        self.checkpoint = checkpoint; self.prompts = prompts; self.output = output
    }
}

/// Samples a grid (or an interpolation strip) from any checkpoint; returns NFE and seconds.
@discardableResult
public func runSample(_ r: SampleRequest) throws -> (nfe: Int, seconds: Double) {
    let (model, _) = try FlowModel.load(from: URL(fileURLWithPath: r.checkpoint))
    if !r.allowUnknown { try checkPromptWords(r.prompts, tokenizer: model.tokenizer) }
    let shape = model.spec.itemShape
    var prompts: [String]
    var x0: Tensor
    if r.interpolate > 0 {
        guard r.prompts.count == 1 else { throw ModelError("--interpolate takes exactly one prompt, got \(r.prompts.count)") }
        let ab = itemNoise(seed: r.seed, first: 0, count: 2, itemShape: shape)
        x0 = try slerpFrames(ab.slice(axis: 0, range: 0..<1), ab.slice(axis: 0, range: 1..<2), frames: r.interpolate)
        prompts = [String](repeating: r.prompts[0], count: r.interpolate)
    } else {
        prompts = r.prompts.flatMap { [String](repeating: $0, count: r.perPrompt) }
        x0 = itemNoise(seed: r.seed, first: 0, count: prompts.count, itemShape: shape)
    }
    let start = Date()
    let solver = makeSolver(r.solver, steps: r.steps)
    let (images, nfe) = try generate(model, x0: x0, prompts: prompts, solver: solver, guidance: r.guidance)
    let secs = Date().timeIntervalSince(start)
    let cols = r.columns ?? (r.interpolate > 0 ? r.interpolate : (r.perPrompt > 1 ? r.perPrompt : min(prompts.count, 10)))
    try writeSampleImage(path: r.output, images: images, columns: cols)
    return (nfe, secs)
}
