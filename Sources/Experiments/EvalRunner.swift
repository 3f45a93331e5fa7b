import Foundation
import Autograd
import Data
import Flow
import Models
import TensorCore

public struct EvalRequest {
    public var checkpoints: [(label: String, path: String)]
    public var steps: [Int]
    public var samples: Int
    public var seeds: [UInt64]
    public var solver: SolverName = .euler
    public var guidance: Float = 1.5
    public var evaluator: String? = nil
    public var straightnessSteps = 25
    public var batchSize = 250
    public init(checkpoints: [(label: String, path: String)], steps: [Int], samples: Int, seeds: [UInt64]) {
        self.checkpoints = checkpoints; self.steps = steps; self.samples = samples; self.seeds = seeds
    }
}

extension Pipeline {
    /// Scores checkpoints at several step counts on the same noise and prompts.
    public func evaluate(_ r: EvalRequest) throws -> [Score] {
        let test = try loadDataset(.test)
        let evURL = r.evaluator.map { URL(fileURLWithPath: $0) } ?? Pipeline.evaluatorURL(dataset: test.name)
        guard FileManager.default.fileExists(atPath: evURL.path) else {
            throw ModelError("evaluator \(evURL.path) not found; train it with: reflow-train --config <config> --stage evaluator")
        }
        let (evaluator, evMeta) = try Classifier.load(from: evURL)
        let reference = try Reference(test: test, evaluator: evaluator)
        let classNames = (evMeta["class_names"] ?? "").split(separator: "|").map(String.init)
        let (prompts, classes) = evaluationPrompts(test, count: r.samples, evaluatorClassNames: classNames)
        var scores: [Score] = []
        for (label, path) in r.checkpoints {
            let (model, _) = try FlowModel.load(from: URL(fileURLWithPath: path))
            for steps in r.steps {
                let solver = makeSolver(r.solver, steps: steps)
                var sc = Score(label: label, steps: steps, nfe: 0)
                for seed in r.seeds {
                    let s = try scoreSamples(model, solver: solver, guidance: r.guidance, prompts: prompts, classes: classes,
                                             seed: seed, reference: reference, batchSize: r.batchSize)
                    if let a = s.accuracy { sc.promptAccuracy.append(a) }
                    sc.fdFeatures.append(s.fdFeatures); sc.fdPixels.append(s.fdPixels)
                    sc.imagesPerSecond.append(s.imagesPerSecond); sc.nfe = s.nfe
                }
                scores.append(sc)
                if !quiet {
                    FileHandle.standardError.write(Data("eval \(label) @\(steps): acc \(formatSpread(sc.promptAccuracy, digits: 1, percent: true)), FD \(formatSpread(sc.fdFeatures))\n".utf8))
                }
            }
        }
        return scores
    }
}

/// The results table in Markdown.
public func scoresTable(_ scores: [Score]) -> String {
    var lines = ["| model | steps | NFE | prompt acc. | FD (evaluator) | FD (pixels) | images/s |",
                 "|---|---:|---:|---:|---:|---:|---:|"]
    for s in scores {
        lines.append("| \(s.label) | \(s.steps) | \(s.nfe) | \(formatSpread(s.promptAccuracy, digits: 1, percent: true)) | \(formatSpread(s.fdFeatures)) | \(formatSpread(s.fdPixels)) | \(formatSpread(s.imagesPerSecond, digits: 0)) |")
    }
    return lines.joined(separator: "\n")
}

public func scoresJSON(_ scores: [Score]) -> String {
    let rows: [[String: Any]] = scores.map {
        ["model": $0.label, "steps": $0.steps, "nfe": $0.nfe, "prompt_accuracy": $0.promptAccuracy,
         "fd_features": $0.fdFeatures, "fd_pixels": $0.fdPixels, "images_per_second": $0.imagesPerSecond]
    }
    let data = (try? JSONSerialization.data(withJSONObject: rows, options: [.prettyPrinted, .sortedKeys])) ?? Data()
    return String(decoding: data, as: UTF8.self)
}
