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

    /// Decodes and validates (`validate()`) a spec read from a file: nothing is allocated for a
    /// spec that is out of range. `source` names the file and key in errors.
    public static func fromJSON(_ s: String, source: String = "model_spec metadata") throws -> ModelSpec {
        let spec: ModelSpec
        do { spec = try JSONDecoder().decode(ModelSpec.self, from: Data(s.utf8)) } catch {
            throw ModelError("\(source) is not a valid model description: \(error)")
        }
        do { try spec.validate() } catch let e as ModelError { throw ModelError("\(source): \(e.description)") }
        return spec
    }
}

public struct ModelError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}
