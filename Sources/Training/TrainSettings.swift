import NN

/// What the training loop needs to know about a stage, as plain values. Built from a config
/// section (`TrainSection.settings` in Experiments), which is the one home of every default:
/// this type has none.
public struct TrainSettings: Equatable {
    public var steps: Int
    public var batchSize: Int
    /// Peak learning rate, warmup and decay.
    public var schedule: LRSchedule
    public var weightDecay: Float
    /// Clip the global gradient norm to this (0 = off).
    public var gradClip: Float
    /// EMA of the weights (0 = off).
    public var emaDecay: Float
    /// EMA warm-up (`EMA.warmup`): min(decay, (1 + k) / (10 + k)) at update k.
    public var emaWarmup = false
    /// Probability of replacing a caption by the empty one (what makes guidance possible).
    public var captionDropout: Float
    /// Steps between checkpoints, sample grids and metrics lines (0 = only at the end).
    public var checkpointEvery: Int
    public var sampleEvery: Int
    public var logEvery: Int

    public init(steps: Int, batchSize: Int, schedule: LRSchedule, weightDecay: Float, gradClip: Float, emaDecay: Float,
                captionDropout: Float, checkpointEvery: Int, sampleEvery: Int, logEvery: Int) {
        self.steps = steps; self.batchSize = batchSize; self.schedule = schedule; self.weightDecay = weightDecay
        self.gradClip = gradClip; self.emaDecay = emaDecay; self.captionDropout = captionDropout
        self.checkpointEvery = checkpointEvery; self.sampleEvery = sampleEvery; self.logEvery = logEvery
    }
}
