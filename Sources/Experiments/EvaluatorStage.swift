import Foundation
import Autograd
import Datasets
import Distributed
import Evaluation
import Formats
import Training
import Reporting
import Models
import NN
import TensorCore

/// Settings of an evaluator's training; fixed per dataset and architecture so the committed
/// weights are reproducible by the command recorded in their metadata.
public struct EvaluatorSettings {
    public var steps: Int, batchSize: Int, lr: Double, seed: UInt64, width: Int
    public static func forDataset(_ name: String, arch: EvaluatorArch) -> EvaluatorSettings {
        switch (name, arch) {
        case ("fashion-mnist", .conv3), ("glyphs", .conv3):
            return EvaluatorSettings(steps: 3000, batchSize: 128, lr: 2e-3, seed: 1, width: 32)
        case (_, .conv3):
            return EvaluatorSettings(steps: 800, batchSize: 128, lr: 2e-3, seed: 1, width: 32)
        case ("fashion-mnist", .vgg), ("glyphs", .vgg):
            return EvaluatorSettings(steps: 4000, batchSize: 128, lr: 2e-3, seed: 2, width: 32)
        case (_, .vgg):
            return EvaluatorSettings(steps: 1200, batchSize: 128, lr: 2e-3, seed: 2, width: 32)
        }
    }
}

/// What a trained classifier is for. The perceptual network is trained like the conv3 evaluator
/// but from another seed, so that a perceptual distillation loss is never computed in the
/// feature space the tables score (a metric is never also the loss).
public enum ClassifierRole: String, Sendable {
    case evaluator, perceptual
}

/// Where a dataset's perceptual-loss network lives.
public func defaultPerceptualURL(dataset: String, root: String = "checkpoints/perceptual") -> URL {
    URL(fileURLWithPath: "\(root)/\(dataset).safetensors")
}

extension Pipeline {
    /// Trains the dataset's evaluator classifier on the real training split and writes it with
    /// its test accuracy in the metadata. Returns (path, test accuracy).
    @discardableResult
    public func trainEvaluator(arch: EvaluatorArch = .conv3, output: URL? = nil, command: String,
                               role: ClassifierRole = .evaluator) throws -> (URL, Double) {
        let train = try loadDataset(.train), test = try loadDataset(.test)
        guard let (labels, classNames) = evaluatorLabels(train), let (testLabels, _) = evaluatorLabels(test, classNames: classNames) else {
            throw ModelError("dataset \(train.name) has no class labels, so it has no evaluator")
        }
        let classes = classNames.count
        var s = EvaluatorSettings.forDataset(train.name, arch: arch)
        if role == .perceptual { s.seed = 3 }  // another network than the evaluators
        let model = makeClassifier(arch, inputShape: train.itemShape, classes: classes, width: s.width, seed: s.seed)
        let opt = AdamW(model.namedParameters(), lr: s.lr, weightDecay: 1e-4)
        let schedule = LRSchedule(base: s.lr, warmupSteps: 100, decay: .cosine(totalSteps: s.steps, floor: s.lr * 0.05))
        var sampler = EpochSampler(count: train.count, seed: s.seed)
        // mpirun -np K: each rank takes its slice of every batch; gradients are averaged.
        let comm = Communicator.world, slice = comm.slice(of: s.batchSize)
        let progress = Progress(total: s.steps, label: "\(role.rawValue) \(arch.rawValue)", output: comm.isRoot ? nil : { _ in })
        for step in 0..<s.steps {
            let idx = Array(sampler.indices(step: step, size: s.batchSize)[slice])
            let b = try train.batch(indices: idx)
            opt.lr = schedule.lr(at: step)
            let loss = try crossEntropy(model(Tensor(shape: b.shape, storage: b.images)), labels: idx.map { labels[$0] })
            loss.backward()
            var value = [loss.item]
            averageGradients(model.parameters(), weight: Float(slice.count) / Float(s.batchSize), extra: &value, comm: comm)
            opt.step()
            opt.zeroGrad()
            progress.update(step: step + 1, values: [("loss", Double(value[0]))])
        }
        progress.finish()
        let testImages = Tensor(shape: test.shape, storage: test.images)
        let acc = try classifierAccuracy(model, images: testImages, labels: testLabels)
        let url = output ?? (role == .perceptual ? defaultPerceptualURL(dataset: train.name) : defaultEvaluatorURL(dataset: train.name, arch: arch))
        guard comm.isRoot else { return (url, acc) }
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let meta = model.metadata(extra: [
            "dataset": train.name, "class_names": classNames.joined(separator: "|"),
            "test_accuracy": String(format: "%.4f", acc), "test_items": String(test.count),
            "train_items": String(train.count), "steps": String(s.steps), "seed": String(s.seed),
            "command": command, "role": role.rawValue,
        ])
        try saveCheckpoint(model, metadata: meta, to: url)
        return (url, acc)
    }
}
