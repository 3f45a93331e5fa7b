import Foundation
import Autograd
import Diffusion
import Formats
import TripletStore
import Generation
import Reporting
import Flow
import Models
import TensorCore

// Stage 2 of the chain: (text, noise, image) triplets from a flow's ODE (or a diffusion teacher's
// sampler: the noise is its x_T, the image its output), written to HDF5.
//
// What makes the file reproducible and resumable:
// - pair i's noise is itemNoise(seed, first: i): it depends only on (seed, i);
// - pair i's prompt is prompts[i % prompts.count];
// - pairs are solved in batches on fixed boundaries [b * batch_size, (b + 1) * batch_size), and a
//   batch's images depend only on its members (the network is deterministic per batch; the
//   adaptive solver's steps depend on the whole batch, so the boundaries must never move).
// A resumed run (after kill -9) restarts at the batch holding the first uncommitted row,
// recomputes that batch and appends only the missing rows; a shard is a run of whole batches.
// So the rows equal an uninterrupted single run's, whatever the interruptions and sharding.

/// One pair-generation job. Built from the config's `pairs` section (`Pipeline.pairsRequest` and
/// `PairsRequest(teacher:output:section:...)` in Experiments), which holds every default; the
/// fields are there to be changed one by one (tests, tools).
public struct PairsRequest {
    /// The checkpoint whose ODE makes the images (the teacher, or the 2-RF for distillation pairs).
    public var teacher: String
    public var output: String
    public var count: Int
    public var solver: SolverSettings
    /// The sampler of a diffusion teacher (at `solver.steps` steps); unused for flows.
    public var sampler: DiffusionSamplerKind
    /// The user named the sampler (a flag): an error for a flow checkpoint rather than ignored.
    public var samplerNamed = false
    public var guidance: Float
    public var batchSize: Int
    /// Noise seed: pair i's noise is itemNoise(seed, first: i).
    public var seed: UInt64
    /// Pair i gets prompts[i % prompts.count].
    public var prompts: [String]
    /// Where the prompts came from (stored as the `prompts` attribute).
    public var promptSource: String
    public var shard: Shard? = nil
    /// Start the file over instead of resuming it.
    public var overwrite = false
    /// Item shape the caller expects (the config's dataset); nil accepts the checkpoint's.
    public var expectedItemShape: [Int]? = nil
    /// Extra root attributes (the chain's config hash).
    public var extraAttributes: [String: String] = [:]

    public init(teacher: String, output: String, count: Int, solver: SolverSettings, sampler: DiffusionSamplerKind, guidance: Float,
                batchSize: Int, seed: UInt64, prompts: [String], promptSource: String) {
        self.teacher = teacher; self.output = output; self.count = count; self.solver = solver; self.sampler = sampler
        self.guidance = guidance; self.batchSize = batchSize; self.seed = seed
        self.prompts = prompts; self.promptSource = promptSource
    }
}

public struct PairsResult {
    public var path: String
    /// Committed rows in the file at the end.
    public var rows: Int
    /// Rows this call generated (0 when the file was already complete).
    public var generated: Int
    /// Rows the file held when this call started (a resume point, 0 for a new file).
    public var resumedFrom: Int
    /// Mean NFE per batch over this call's batches (nil when none ran).
    public var meanNFE: Double?
    public var seconds: Double

    public init(path: String, rows: Int, generated: Int, resumedFrom: Int, meanNFE: Double?, seconds: Double) {
        self.path = path; self.rows = rows; self.generated = generated; self.resumedFrom = resumedFrom
        self.meanNFE = meanNFE; self.seconds = seconds
    }
}

/// Generates (or finishes) a triplet file. Re-running the same request after an interruption
/// continues from the committed rows; the result is row-for-row what an uninterrupted run writes.
@discardableResult
public func generatePairs(_ r: PairsRequest) throws -> PairsResult {
    guard r.count >= 1 else { throw ModelError("pairs: count must be at least 1, got \(r.count)") }
    guard r.batchSize >= 1 else { throw ModelError("pairs: batch_size must be at least 1, got \(r.batchSize)") }
    guard !r.prompts.isEmpty else { throw ModelError("pairs: no prompts (\(r.promptSource))") }
    let teacherURL = URL(fileURLWithPath: r.teacher)
    guard FileManager.default.fileExists(atPath: teacherURL.path) else {
        throw ModelError("pairs: teacher checkpoint \(r.teacher) not found")
    }
    let (model, meta) = try FlowModel.load(from: teacherURL)
    let shape = model.spec.itemShape
    if let want = r.expectedItemShape, want != shape {
        throw ModelError("pairs: teacher \(r.teacher) makes items of shape \(shape), but the config's dataset has items of shape \(want): this checkpoint was trained for another dataset")
    }
    try checkSamplingFlags(metadata: meta, checkpoint: r.teacher, solverNamed: false, samplerNamed: r.samplerNamed)
    let method = try SampleMethod.forCheckpoint(metadata: meta, source: r.teacher, solver: r.solver, sampler: r.sampler)
    let attrs = try pairsAttributes(r, metadata: meta)
    let range = r.shard?.rows(total: r.count, batchSize: r.batchSize) ?? 0..<r.count

    let existed = FileManager.default.fileExists(atPath: r.output)
    for name in TripletWriter.removeStaleTemporaries(besides: r.output) {
        Log.note("removed \(name) beside \(r.output), left by a killed writer")
    }
    try FileManager.default.createDirectory(at: URL(fileURLWithPath: r.output).deletingLastPathComponent(),
                                            withIntermediateDirectories: true)
    let writer: TripletWriter
    do {
        // /text entries are fixed-size (triplet format 2): sized for the longest prompt.
        writer = try TripletWriter(path: r.output, itemShape: shape, attributes: attrs,
                                   mode: r.overwrite ? .overwrite : .createOrAppend,
                                   textBytes: max(1, r.prompts.map(\.utf8.count).max() ?? 1))
    } catch let busy as WriterBusyError {
        throw ModelError("\(busy)")  // starting over would not help either
    } catch {
        // Starting over does not help a file we may not write.
        let hint = existed && !r.overwrite && access(r.output, W_OK) == 0
        throw ModelError("\(error)" + (hint ? " (to start this file over, pass --overwrite)" : ""))
    }
    let start = writer.committedCount
    let total = range.count
    guard start <= total else {
        try? writer.close()
        throw ModelError("\(r.output) already holds \(start) pairs, more than the \(total) requested; pass --overwrite to start over or raise the count")
    }
    let began = Date()
    var nfes: [Int] = []
    if start < total {
        let perBatchLog = max(1, (total / r.batchSize) / 20) * r.batchSize
        let progress = Progress(total: total, label: "pairs", startStep: start, plainInterval: 10,
                                plainEverySteps: perBatchLog, output: pairsProgressOutput)
        let what = start > 0 ? "resuming at pair \(range.lowerBound + start) of" : "generating"
        progress.message("pairs: \(what) \(total) pairs \(range.lowerBound)..<\(range.upperBound) from \(r.teacher) with \(method.name), guidance \(r.guidance), batch \(r.batchSize) -> \(r.output)")
        let size = shape.reduce(1, *)
        var next = range.lowerBound + start  // first global pair index still missing
        do {
            while next < range.upperBound {
                let b = next / r.batchSize
                let lo = b * r.batchSize, hi = min(r.count, lo + r.batchSize)
                let x0 = itemNoise(seed: r.seed, first: lo, count: hi - lo, itemShape: shape)
                let prompts = (lo..<hi).map { r.prompts[$0 % r.prompts.count] }
                let (images, nfe) = try generate(model, x0: x0, prompts: prompts, method: method,
                                                 guidance: r.guidance, batchSize: hi - lo)
                nfes.append(nfe)
                let skip = next - lo, n = hi - next
                try writer.append(texts: Array(prompts[skip...]),
                                  noise: UnsafeBufferPointer(start: x0.storage.ptr + skip * size, count: n * size),
                                  images: UnsafeBufferPointer(start: images.storage.ptr + skip * size, count: n * size))
                next = hi
                let mean = Double(nfes.reduce(0, +)) / Double(nfes.count)
                progress.update(step: next - range.lowerBound, values: [("nfe", mean)])
            }
            try writer.close()
        } catch {
            try? writer.close()
            throw error
        }
        progress.finish()
    } else {
        try writer.close()
    }
    return PairsResult(path: r.output, rows: writer.committedCount, generated: total - start, resumedFrom: start,
                       meanNFE: nfes.isEmpty ? nil : Double(nfes.reduce(0, +)) / Double(nfes.count),
                       seconds: Date().timeIntervalSince(began))
}

/// The root attributes a request's file carries: what made the pairs (checkpoint and its
/// SHA-256, solver, guidance, noise seed, batch boundaries, prompts) and, for a shard, its part.
/// A file is resumed only when its attributes equal these. Pairs of a diffusion teacher also name
/// its kind, schedule, prediction and sampler, and `solver` holds the sampler's settings.
public func pairsAttributes(_ r: PairsRequest, metadata: [String: String]? = nil) throws -> [String: String] {
    let url = URL(fileURLWithPath: r.teacher)
    let meta = try metadata ?? Safetensors.readMetadata(url)
    let st = meta["stage"]
    var attrs: [String: String] = [
        TripletFormat.Key.teacherCheckpoint: url.standardizedFileURL.path,
        TripletFormat.Key.teacherSHA256: try SHA256.hex(file: url.path),
        TripletFormat.Key.guidance: "\(r.guidance)",
        TripletFormat.Key.seed: String(r.seed),
        PairsKey.batchSize: String(r.batchSize),
        PairsKey.prompts: r.promptSource,
        PairsKey.noise: "pair i: standard normal from Philox(seed) stream i (itemNoise)",
        PairsKey.teacherStage: st ?? "unknown",
    ]
    attrs[TripletFormat.Key.solver] = r.solver.json
    if let teacher = try DiffusionTeacher(metadata: meta, source: r.teacher) {
        let settings = DiffusionSamplerSettings(kind: r.sampler, steps: r.solver.steps)
        attrs[TripletFormat.Key.solver] = settings.json
        attrs[PairsKey.sampler] = try settings.make(for: teacher).name + ", output clipped to [-1, 1]"
        attrs[DiffusionTeacher.Key.kind] = TeacherKind.diffusion.rawValue
        attrs[DiffusionTeacher.Key.schedule] = teacher.schedule.name
        attrs[DiffusionTeacher.Key.prediction] = teacher.prediction.rawValue
    }
    attrs.merge(r.extraAttributes) { _, b in b }
    if let shard = r.shard {
        let range = shard.rows(total: r.count, batchSize: r.batchSize)
        attrs[PairsKey.shard] = shard.description
        attrs[PairsKey.shardRows] = "\(range.lowerBound)-\(range.upperBound)"
        attrs[PairsKey.shardTotal] = String(r.count)
    }
    return attrs
}

/// Progress lines count pairs, not training steps.
private func pairsProgressOutput(_ text: String) {
    Log.write(text.replacingOccurrences(of: " it/s", with: " pairs/s").replacingOccurrences(of: " s/it", with: " s/pair"))
}

/// The noise seed of every pair file of an experiment: derived from the config seed but apart
/// from evaluation seeds (0, 1, ...), so that scores and distillation errors are measured on
/// noise no pair was made from.
public func pairsNoiseSeed(configSeed: Int) -> UInt64 {
    var z = UInt64(bitPattern: Int64(configSeed)) ^ 0x7061_6972_735F_6E6F  // "pairs_no"
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

