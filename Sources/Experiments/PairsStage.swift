import Foundation
import Datasets
import Formats
import Generation
import Reporting
import Sampling
import Models

// The chain's pairs stage: a `PairsRequest` from the config's `pairs` section and the dataset's
// captions (the generator itself is `generatePairs`, in Sampling).

extension PairsRequest {
    /// A request with the section's count, solver, guidance and batch size.
    public init(teacher: String, output: String, section p: PairsSection, seed: UInt64, prompts: [String],
                promptSource: String) {
        self.init(teacher: teacher, output: output, count: p.count, solver: p.solverSettings, sampler: p.sampler, guidance: p.guidance,
                  batchSize: p.batchSize, seed: seed, prompts: prompts, promptSource: promptSource)
    }
}

extension Pipeline {
    /// Default place of a pair file in the run folder: pairs/<name>.h5.
    public func pairsPath(_ name: String) -> String { run.file("pairs/\(name).h5") }

    /// Training captions with words the teacher does not know become <unk> in its text encoder.
    /// The rule: when the teacher's vocabulary is the one this config builds from these captions
    /// (text.vocab_min_count > 1 leaves rare words out), the teacher was trained on those same
    /// <unk>s: a note. Otherwise the teacher learned other captions: a warning naming the words
    /// and how many captions hold them, and an error when more than half do (the pairs would
    /// mostly show what the teacher makes of <unk>).
    func checkCaptionWords(_ captions: [String], dataset train: Dataset, teacher: String, tokenizer: Tokenizer) throws {
        let (words, affected) = unknownPromptWords(in: captions, tokenizer: tokenizer)
        guard affected > 0 else { return }
        let shown = words.prefix(10).map { "'\($0.word)' (\($0.prompts))" }.joined(separator: ", ") + (words.count > 10 ? ", ..." : "")
        let what = "\(affected) of \(captions.count) training captions of \(train.name) hold \(words.count) word\(words.count == 1 ? "" : "s") outside the vocabulary of \(teacher): \(shown)"
        if tokenizer.words == config.tokenizer(for: train).words {
            Log.note("pairs: \(what); they become <unk>, as in the teacher's training (text.vocab_min_count = \(config.text.vocabMinCount))")
        } else if affected * 2 > captions.count {
            throw ModelError("pairs: \(what); the teacher was trained on other captions: use the teacher of this dataset, or pass --prompts with words it knows")
        } else {
            Log.warning("pairs: \(what); they become <unk> (the teacher was trained on other captions)")
        }
    }

    /// A request from the config's `pairs` section, prompts from the training captions (pair i
    /// gets caption i mod N) or from `promptFile`.
    public func pairsRequest(teacher: String, output: String, promptFile: String? = nil) throws -> PairsRequest {
        let train = try loadDataset(.train)
        let prompts: [String], source: String
        if let promptFile {
            prompts = try readPromptFile(promptFile)
            let (m, _) = try FlowModel.load(from: URL(fileURLWithPath: teacher))
            try checkPromptWords(prompts, tokenizer: m.tokenizer)
            source = "file \(URL(fileURLWithPath: promptFile).lastPathComponent) sha256 \(try SHA256.hex(file: promptFile)), pair i gets line i mod \(prompts.count)"
        } else {
            prompts = train.captions
            source = "dataset \(train.name) train captions (\(train.count)), pair i gets caption i mod \(train.count)"
            if FileManager.default.fileExists(atPath: teacher) {  // a missing one: generatePairs says so
                let (m, _) = try FlowModel.load(from: URL(fileURLWithPath: teacher))
                try checkCaptionWords(prompts, dataset: train, teacher: teacher, tokenizer: m.tokenizer)
            }
        }
        var r = PairsRequest(teacher: teacher, output: output, section: config.pairs, seed: pairsNoiseSeed(configSeed: config.seed),
                             prompts: prompts, promptSource: source)
        r.expectedItemShape = train.itemShape
        return r
    }
}
