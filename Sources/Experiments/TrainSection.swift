import ConfigKit
import Flow
import NN
import Training

// A training stage's keys (teacher, reflow, and the training part of distill): optimizer, schedule,
// EMA, caption dropout, time sampling, checkpoint and log cadence.
public struct TrainSection: ConfigSection, Equatable {
    public var steps = 4000
    public var batchSize = 128
    public var lr: Float = 1e-3
    public var weightDecay: Float = 0
    public var warmup = 100
    public var schedule = Schedule.cosine
    public var minLRRatio: Float = 0.1
    public var gradClip: Float = 1
    public var emaDecay: Float = 0.999
    public var emaWarmup = false
    public var captionDropout: Float = 0.1
    public var timeSampling = TimeSampling.uniform
    public var timeEps: Float = 0
    public var timeUA: Float = 4
    public var flowLoss = FlowLoss.l2
    public var checkpointEvery = 1000
    public var sampleEvery = 1000
    public var logEvery = 50

    public init() {}

    public init(steps: Int, lr: Float, captionDropout: Float = 0.1) {
        self.steps = steps
        self.lr = lr
        self.captionDropout = captionDropout
    }

    /// The training loop's view of this section.
    public var settings: TrainSettings {
        let decay: LRSchedule.Decay = schedule == .cosine
            ? .cosine(totalSteps: steps, floor: Double(lr * minLRRatio)) : .constant
        var s = TrainSettings(steps: steps, batchSize: batchSize,
                              schedule: LRSchedule(base: Double(lr), warmupSteps: warmup, decay: decay),
                              weightDecay: weightDecay, gradClip: gradClip, emaDecay: emaDecay,
                              captionDropout: captionDropout, checkpointEvery: checkpointEvery,
                              sampleEvery: sampleEvery, logEvery: logEvery)
        s.emaWarmup = emaWarmup
        return s
    }

    /// How t is drawn for the rectified-flow loss.
    public var timeSampler: TimeSampler {
        switch timeSampling {
        case .uniform: return .uniform(eps: timeEps)
        case .logitNormal: return .logitNormal(mean: 0, std: 1)
        case .uShaped: return .uShaped(a: timeUA)
        }
    }

    public mutating func visit(_ v: inout ConfigVisitor) throws {
        try v.field("steps", &steps, doc: "optimizer steps")
        try v.field("batch_size", &batchSize, doc: "examples per step")
        try v.field("lr", &lr, doc: "peak learning rate (AdamW)")
        try v.field("weight_decay", &weightDecay, doc: "decoupled weight decay")
        try v.field("warmup", &warmup, doc: "linear warmup steps")
        try v.field("schedule", &schedule, doc: "learning rate after warmup")
        try v.field("min_lr_ratio", &minLRRatio, doc: "cosine: final lr as a fraction of lr")
        try v.field("grad_clip", &gradClip, doc: "clip the global gradient norm to this (0 = off)")
        try v.field("ema_decay", &emaDecay, doc: "EMA of weights used for sampling (0 = off)")
        // Dumped only when on: the dump is what stage hashes are made of, and runs from before
        // this key existed must stay up to date.
        try v.field("ema_warmup", &emaWarmup, omittedAt: false, doc: "EMA warm-up: decay min(ema_decay, (1 + k) / (10 + k)) at update k (diffusers' default); for stages started from weights that predict something else (a 2-RF from an eps teacher)")
        try v.field("caption_dropout", &captionDropout, doc: "probability of an empty caption (enables guidance)")
        try v.field("time_sampling", &timeSampling, doc: "distribution of t")
        try v.field("time_eps", &timeEps, doc: "draw t from [time_eps, 1 - time_eps]")
        try v.field("time_u_a", &timeUA, doc: "u-shaped: a of the density cosh(a (t - 1/2)) (4: ends 3.8x the middle)")
        try v.field("flow_loss", &flowLoss, doc: "teacher/reflow velocity loss (weighted-huber: 2-RF++'s t-weighted pseudo-Huber)")
        try v.field("checkpoint_every", &checkpointEvery, doc: "steps between checkpoints (0 = only at the end)")
        try v.field("sample_every", &sampleEvery, doc: "steps between sample grids (0 = only at the end)")
        try v.field("log_every", &logEvery, doc: "steps between metrics lines")
        v.check(steps >= 0, "steps", "must not be negative")
        v.check(batchSize >= 1, "batch_size", "must be at least 1")
        v.check(lr > 0 && lr.isFinite, "lr", "must be positive")
        v.check(weightDecay >= 0, "weight_decay", "must not be negative")
        v.check(warmup >= 0, "warmup", "must not be negative")
        v.check(minLRRatio >= 0 && minLRRatio <= 1, "min_lr_ratio", "must be in [0, 1]")
        v.check(gradClip >= 0, "grad_clip", "must not be negative")
        v.check(emaDecay >= 0 && emaDecay < 1, "ema_decay", "must be in [0, 1)")
        v.check(captionDropout >= 0 && captionDropout <= 1, "caption_dropout", "must be in [0, 1]")
        v.check(timeEps >= 0 && timeEps < 0.5, "time_eps", "must be in [0, 0.5)")
        v.check(timeUA > 0 && timeUA.isFinite, "time_u_a", "must be positive")
        v.check(checkpointEvery >= 0, "checkpoint_every", "must not be negative")
        v.check(sampleEvery >= 0, "sample_every", "must not be negative")
        v.check(logEvery >= 1, "log_every", "must be at least 1")
    }
}
