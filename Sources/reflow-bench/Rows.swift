import Foundation

/// One row of the bench table: a piece of work timed in our engine and, through
/// scripts/bench_torch.py, in PyTorch.
protocol BenchRow {
    var name: String { get }
    /// What the rate counts ("steps/s", "images/s", "pairs/s").
    var unit: String { get }
    var parameterCount: Int { get }
    var defaultSteps: Int { get }
    var defaultWarmup: Int { get }
    /// Runs `warmup` untimed and `steps` timed iterations; returns the rate in `unit`.
    func measure(steps: Int, warmup: Int) throws -> Double
    /// bench_torch.py arguments that run the same work (steps, warmup and threads are added).
    var torchArguments: [String] { get }
}

/// The two small training models (MLP, conv net) of Models.swift.
struct TrainingRow: BenchRow {
    let work: Workload
    var name: String { work.kind.rawValue }
    var unit: String { "steps/s" }
    var parameterCount: Int { work.model.parameterCount }
    var defaultSteps: Int { work.kind == .mlp ? 100 : 20 }
    var defaultWarmup: Int { work.kind == .mlp ? 10 : 3 }
    var torchArguments: [String] { ["--model", work.kind.rawValue] }

    func measure(steps: Int, warmup: Int) throws -> Double {
        for _ in 0..<warmup { try work.step() }
        let t0 = now()
        for _ in 0..<steps { try work.step() }
        return Double(steps) / (now() - t0)
    }
}

/// The chain's own model (ChainBench.swift): teacher training step, one-step sampling, and
/// guided pair generation.
struct ChainRow: BenchRow {
    enum Kind: String, CaseIterable { case train = "unet-train", sample = "unet-sample", pairs = "unet-pairs" }
    let kind: Kind
    let work: ChainWorkload
    var name: String { kind.rawValue }
    var unit: String { kind == .train ? "steps/s" : kind == .sample ? "images/s" : "pairs/s" }
    var parameterCount: Int { work.model.parameterCount }
    // A pair batch is 8 RK4 steps (32 guided passes at batch 512): time 2 of its steps, the
    // same work each, and scale to the whole batch.
    var defaultSteps: Int { kind == .train ? 6 : kind == .sample ? 4 : 2 }
    var defaultWarmup: Int { 1 }
    var torchArguments: [String] { ["--model", kind.rawValue, "--chain-dir", work.dir.path] }

    func measure(steps: Int, warmup: Int) throws -> Double {
        switch kind {
        case .train:
            for _ in 0..<warmup { try work.trainStep() }
            let t0 = now()
            for _ in 0..<steps { try work.trainStep() }
            return Double(steps) / (now() - t0)
        case .sample:
            for _ in 0..<warmup { _ = try work.sampleOneStep() }
            let t0 = now()
            for _ in 0..<steps { _ = try work.sampleOneStep() }
            return Double(steps * work.sampleBatch) / (now() - t0)
        case .pairs:
            if warmup > 0 { _ = try work.pairSolverSteps(1) }
            let t0 = now()
            _ = try work.pairSolverSteps(steps)
            let perStep = (now() - t0) / Double(steps)
            return Double(work.sampleBatch) / (perStep * Double(work.config.pairs.steps))
        }
    }
}
