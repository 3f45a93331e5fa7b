import Datasets
import Models

/// What a config alone determines: its data, vocabulary and model. Pipeline uses these; so does
/// reflow-bench, which builds the config's model without a run folder.
extension ExperimentConfig {
    public var seedValue: UInt64 { UInt64(bitPattern: Int64(seed)) }

    public func loadDataset(_ split: Split) throws -> Dataset {
        var opts = DatasetOptions(toySeed: seedValue)
        if let root = dataset.root {
            switch dataset.name {
            case .digits: opts.digitsPath = root
            case .fashionMNIST: opts.fashionDirectory = root
            case .glyphs: opts.unifontPath = root
            case .toy2d: break
            }
        }
        var d = try Dataset.load(dataset.name, split: split, options: opts)
        if split == .train, let limit = dataset.trainLimit, limit < d.count { d = try d.prefix(limit) }
        return d
    }

    public func tokenizer(for train: Dataset) -> Tokenizer {
        Tokenizer(captions: train.captions, maxTokens: text.maxTokens, minCount: text.vocabMinCount)
    }

    public func modelSpec(tokenizer: Tokenizer, itemShape: [Int]) -> ModelSpec {
        let m = model
        var spec = ModelSpec(kind: m.kind, channels: itemShape[0], height: itemShape[1],
                             width: itemShape[2], vocabularySize: tokenizer.vocabularySize)
        spec.hidden = m.hidden; spec.depth = m.depth; spec.levels = m.channels
        spec.blocksPerLevel = m.blocksPerLevel; spec.attentionLevels = m.attentionLevels
        spec.groups = m.groups; spec.dropout = m.dropout; spec.timeEmbedding = m.timeEmbedding
        spec.maxTokens = text.maxTokens; spec.textWidth = text.width
        spec.textLayers = text.layers; spec.textHeads = text.heads
        return spec
    }
}
