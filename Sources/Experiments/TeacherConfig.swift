import Foundation
import ConfigKit
import Diffusion
import Flow

// The teacher's section: a training stage plus what kind of model it trains. A `diffusion`
// teacher is an eps- (or v-) prediction model on a discrete VP schedule, sampled with DDIM or
// DPM-Solver++ (`pairs.sampler`, `sample.sampler`, `eval.sampler`); a `flow` teacher is the
// 1-rectified flow, solved with an ODE solver (`pairs.solver`, ...).

extension TeacherKind: ConfigValue, ConfigEnum {}
extension DiffusionPrediction: ConfigValue, ConfigEnum {}
extension BetaSchedule: ConfigValue, ConfigEnum {}
extension DiffusionSamplerKind: ConfigValue, ConfigEnum {}

public struct TeacherSection: ConfigSection, TrainedSection, Equatable {
    public var train = TrainSection()
    public var kind = TeacherKind.flow
    public var prediction = DiffusionPrediction.epsilon
    public var noiseSchedule = BetaSchedule.scaledLinear
    public var betaStart: Double = 0.00085
    public var betaEnd: Double = 0.012
    public var trainTimesteps = 1000

    public init() {}

    /// The diffusion teacher this section trains; nil for a flow teacher.
    public func diffusionTeacher() throws -> DiffusionTeacher? {
        guard kind == .diffusion else { return nil }
        let schedule = try VPSchedule(kind: noiseSchedule, trainSteps: trainTimesteps, betaStart: betaStart, betaEnd: betaEnd)
        return DiffusionTeacher(schedule: schedule, prediction: prediction)
    }

    public mutating func visit(_ v: inout ConfigVisitor) throws {
        try train.visit(&v)
        try v.field("kind", &kind, doc: "flow: 1-rectified flow (velocity); diffusion: eps/v-prediction on a discrete VP schedule (time_sampling and flow_loss unused)")
        try v.field("prediction", &prediction, doc: "diffusion: what the network predicts")
        try v.field("noise_schedule", &noiseSchedule, doc: "diffusion: betas (scaled_linear: Stable Diffusion's; cosine ignores beta_start/beta_end)")
        try v.field("beta_start", &betaStart, doc: "diffusion: first beta (linear kinds)")
        try v.field("beta_end", &betaEnd, doc: "diffusion: last beta (linear kinds)")
        try v.field("train_timesteps", &trainTimesteps, doc: "diffusion: discrete steps T; step s enters the network as flow time 1 - s/T")
        v.check(trainTimesteps >= 2 && trainTimesteps <= 100_000, "train_timesteps", "must be in 2...100000")
        v.check(noiseSchedule == .cosine || (betaStart > 0 && betaStart <= betaEnd), "beta_start", "must be positive and at most beta_end (\(betaEnd))")
        v.check(noiseSchedule == .cosine || betaEnd < 1, "beta_end", "must be below 1")
    }
}
