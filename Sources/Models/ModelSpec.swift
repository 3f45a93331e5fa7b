import Foundation

/// Everything needed to rebuild a text-to-image velocity model from a checkpoint alone: stored
/// as JSON in the safetensors metadata ("model_spec"), beside the tokenizer ("tokenizer").
public struct ModelSpec: Codable, Equatable, Sendable {
    public enum Kind: String, Codable, Sendable, CaseIterable { case mlp, unet }
    public var kind: Kind
    /// Data layout [C, H, W] of one item (toy2d: [2, 1, 1]).
    public var channels: Int, height: Int, width: Int
    /// MLP: hidden width and number of hidden residual layers.
    public var hidden: Int = 256
    public var depth: Int = 3
    /// U-Net: channels per resolution level, residual blocks per level, levels with cross-attention.
    public var levels: [Int] = [32, 64]
    public var blocksPerLevel: Int = 1
    public var attentionLevels: [Int] = [1]
    public var groups: Int = 8
    public var dropout: Float = 0
    /// Width of the sinusoidal time features.
    public var timeEmbedding: Int = 64
    /// Text encoder.
    public var vocabularySize: Int
    public var maxTokens: Int = 12
    public var textWidth: Int = 64
    public var textLayers: Int = 2
    public var textHeads: Int = 4

    public init(kind: Kind, channels: Int, height: Int, width: Int, vocabularySize: Int) {
        self.kind = kind; self.channels = channels; self.height = height; self.width = width
        self.vocabularySize = vocabularySize
    }

    public var itemShape: [Int] { [channels, height, width] }

    public func json() -> String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return String(decoding: (try? enc.encode(self)) ?? Data(), as: UTF8.self)
    }

    public static func fromJSON(_ s: String) throws -> ModelSpec {
        do { return try JSONDecoder().decode(ModelSpec.self, from: Data(s.utf8)) } catch {
            throw ModelError("model_spec metadata is not a valid model description: \(error)")
        }
    }

    /// Problems that would make the network fail later, named by field.
    public func validate() throws {
        var p: [String] = []
        if channels <= 0 || height <= 0 || width <= 0 { p.append("item shape [\(channels), \(height), \(width)] must be positive") }
        if textWidth % max(textHeads, 1) != 0 { p.append("text width \(textWidth) is not divisible by text heads \(textHeads)") }
        if timeEmbedding % 2 != 0 { p.append("time_embedding \(timeEmbedding) must be even") }
        if kind == .unet {
            if levels.isEmpty { p.append("unet needs at least one level in 'channels'") }
            for c in levels where c % groups != 0 { p.append("level channels \(c) not divisible by groups \(groups)") }
            let down = 1 << max(0, levels.count - 1)
            if height % down != 0 || width % down != 0 {
                p.append("image \(height)x\(width) not divisible by 2^\(levels.count - 1) for \(levels.count) levels")
            }
            for l in attentionLevels where l < 0 || l >= levels.count { p.append("attention level \(l) out of range 0..<\(levels.count)") }
        }
        if !p.isEmpty { throw ModelError("invalid model: " + p.joined(separator: "; ")) }
    }
}

public struct ModelError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}
