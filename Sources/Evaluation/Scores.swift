import Foundation
import Distributed
import Autograd
import Datasets
import Flow
import Generation
import Models
import TensorCore

/// Reference statistics of the real test split: in the first evaluator's features (Gaussian fit
/// and k-NN manifold), in the second evaluator's features when there is one, and in pixels.
public struct Reference {
    public let evaluator: any ImageClassifier
    public let features: GaussianFit
    public let manifold: RealManifold
    public let second: (evaluator: any ImageClassifier, features: GaussianFit)?
    public let pixels: GaussianFit

    public init(test: Dataset, evaluator: any ImageClassifier, second: (any ImageClassifier)? = nil) throws {
        let imgs = Tensor(shape: test.shape, storage: test.images)
        let f = try classifierFeatures(evaluator, images: imgs)
        features = try GaussianFit(f)
        manifold = try RealManifold(real: f)
        self.second = try second.map { ($0, try GaussianFit(classifierFeatures($0, images: imgs))) }
        pixels = try GaussianFit(imgs.reshaped([test.count, -1]))
        self.evaluator = evaluator
    }
}

/// One seed's scores of a set of images.
public struct SampleScores {
    /// Share of images the first evaluator assigns to their prompt's class (nil without classes).
    public var accuracy: Double?
    /// Fréchet distance to the test split in the first and second evaluator's features, and in pixels.
    public var fdFeatures: Double
    public var fdSecond: Double?
    public var fdPixels: Double
    /// Improved precision and recall (k = 3) in the first evaluator's features.
    public var precision: Double
    public var recall: Double
    public var imagesPerSecond: Double?
    public var nfe: Int
    public var images: Tensor
}

/// Scores images against the reference. Raw outputs, not clipped: clipping would hide
/// out-of-range samples.
public func scoreImages(_ images: Tensor, classes: [Int], reference: Reference, imagesPerSecond: Double?,
                        nfe: Int) throws -> SampleScores {
    let n = images.shape[0]
    let f = try classifierFeatures(reference.evaluator, images: images)
    var acc: Double? = nil
    if !classes.isEmpty {
        let pred = try classify(reference.evaluator, features: f)
        acc = Double(zip(pred, classes).filter { $0 == $1 }.count) / Double(classes.count)
    }
    let fdF = try frechetDistance(GaussianFit(f), reference.features)
    let fdS = try reference.second.map { try frechetDistance(GaussianFit(classifierFeatures($0.evaluator, images: images)), $0.features) }
    let fdP = try frechetDistance(GaussianFit(images.reshaped([n, -1])), reference.pixels)
    let pr = try reference.manifold.precisionRecall(f)
    return SampleScores(accuracy: acc, fdFeatures: fdF, fdSecond: fdS, fdPixels: fdP, precision: pr.precision,
                        recall: pr.recall, imagesPerSecond: imagesPerSecond, nfe: nfe, images: images)
}

/// Generates `prompts.count` samples from (seed, i) noise with `solver` and scores them.
public func scoreSamples(_ model: FlowModel, solver: ODESolver, guidance: Float, prompts: [String], classes: [Int],
                         seed: UInt64, reference: Reference, batchSize: Int, noiseOffset: Int = 0) throws -> SampleScores {
    try scoreSamples(model, method: .ode(solver), guidance: guidance, prompts: prompts, classes: classes, seed: seed,
                     reference: reference, batchSize: batchSize, noiseOffset: noiseOffset)
}

/// The same with a diffusion sampler or an ODE solver (`SampleMethod`).
/// A `refiner` pass, if any, runs on the samples before scoring (its time and NFE included).
public func scoreSamples(_ model: FlowModel, method: SampleMethod, guidance: Float, prompts: [String], classes: [Int],
                         seed: UInt64, reference: Reference, batchSize: Int, noiseOffset: Int = 0,
                         refiner: Refiner? = nil) throws -> SampleScores {
    let x0 = itemNoise(seed: seed, first: noiseOffset, count: prompts.count, itemShape: model.spec.itemShape)
    let start = Date()
    var (imgs, nfe) = try generateOverRanks(model, x0: x0, prompts: prompts, method: method, guidance: guidance,
                                            batchSize: batchSize, comm: .world)
    if let refiner {
        let (refined, more) = try refiner.refine(imgs, prompts: prompts, seed: seed, noiseOffset: noiseOffset, batchSize: batchSize)
        (imgs, nfe) = (refined, nfe + more)
    }
    let secs = Date().timeIntervalSince(start)
    return try scoreImages(imgs, classes: classes, reference: reference,
                           imagesPerSecond: Double(prompts.count) / max(secs, 1e-9), nfe: nfe)
}

/// `generate` split over the ranks of `mpirun -np K` (one process: `generate` itself): rank r
/// solves a contiguous run of whole batches (the adaptive solver's steps depend on the batch, so
/// the boundaries stay where one process puts them) and every rank receives all images, bit for
/// bit what one process makes.
func generateOverRanks(_ model: FlowModel, x0: Tensor, prompts: [String], method: SampleMethod, guidance: Float,
                       batchSize: Int, comm: Communicator) throws -> (images: Tensor, nfe: Int) {
    guard comm.isDistributed else {
        return try generate(model, x0: x0, prompts: prompts, method: method, guidance: guidance, batchSize: batchSize)
    }
    let n = x0.shape[0], item = x0.count / max(n, 1), batches = (n + batchSize - 1) / batchSize
    let rows = (0..<comm.size).map { r -> Range<Int> in
        let b = comm.slice(of: batches, rank: r)
        return min(n, b.lowerBound * batchSize)..<min(n, b.upperBound * batchSize)
    }
    let mine = rows[comm.rank]
    var part = Tensor(shape: [0] + x0.shape.dropFirst(), storage: Storage(uninitializedCount: 0)), nfe = 0
    if !mine.isEmpty {
        (part, nfe) = try generate(model, x0: x0.slice(axis: 0, range: mine), prompts: Array(prompts[mine]), method: method,
                                   guidance: guidance, batchSize: batchSize)
    }
    let out = Storage(uninitializedCount: n * item)
    comm.allgather(part.storage.ptr, counts: rows.map { $0.count * item }, into: out.ptr)
    return (Tensor(shape: x0.shape, storage: out), Int(comm.allreduce([Double(nfe)], .max)[0]))
}

