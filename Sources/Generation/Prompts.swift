import Foundation
import Autograd
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

/// The words of `prompts` outside `tokenizer`'s vocabulary, most frequent first (ties by word),
/// each with the number of prompts holding it, and how many prompts hold at least one.
public func unknownPromptWords(in prompts: [String], tokenizer: Tokenizer) -> (words: [(word: String, prompts: Int)], prompts: Int) {
    var counts: [String: Int] = [:]
    var affected = 0
    for p in prompts {
        let unknown = Set(tokenizer.unknownWords(in: p))
        if unknown.isEmpty { continue }
        affected += 1
        for w in unknown { counts[w, default: 0] += 1 }
    }
    let words = counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.map { (word: $0.key, prompts: $0.value) }
    return (words, affected)
}
