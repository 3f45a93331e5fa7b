import Foundation
import Autograd
import Flow
import TensorCore

/// What a teacher checkpoint is: a rectified flow (the network's output is a velocity) or a
/// diffusion model (the output is eps or v on a discrete VP schedule). The raw values are the
/// config's `teacher.kind` and the checkpoint metadata's `teacher_kind`.
public enum TeacherKind: String, CaseIterable, Sendable {
    case flow, diffusion
}

public struct DiffusionError: Error, CustomStringConvertible {
    public let description: String
    public init(_ message: String) { description = message }
}

/// A diffusion teacher: its noise schedule and what its network predicts. Written into every
/// checkpoint it trains (`metadata`) and read back from one (`init(metadata:source:)`), so
/// that every tool samples it the way it was trained.
///
/// Time input: the network is the toolkit's velocity network, whose time input is flow time
/// (t = 0 noise, t = 1 data). A diffusion step s (0 = almost clean, T - 1 = almost noise)
/// enters it as t = 1 - s / T, the inverse of InstaFlow's s = T (1 - t) (`flowTime(diffusionStep:)`).
/// A 2-rectified flow initialised from these weights therefore sees the same input scale for
/// the same noise level: step 999 is t = 0.001, step 0 is t = 1.
///
/// Data/noise: the trainer's pair (x0 = noise, x1 = data) in the flow convention becomes
/// eps = x0 and clean data = x1: x_s = alpha_s x1 + sigma_s x0.
public struct DiffusionTeacher: Equatable, Sendable {
    public let schedule: VPSchedule
    public let prediction: DiffusionPrediction

    public init(schedule: VPSchedule, prediction: DiffusionPrediction) {
        self.schedule = schedule; self.prediction = prediction
    }

    /// Checkpoint metadata keys.
    public enum Key {
        public static let kind = "teacher_kind"
        public static let prediction = "diffusion_prediction"
        public static let schedule = "diffusion_schedule"
        public static let betaStart = "diffusion_beta_start"
        public static let betaEnd = "diffusion_beta_end"
        public static let trainSteps = "diffusion_train_steps"
        public static let timeInput = "diffusion_time_input"
    }

    public static let timeInputDescription = "flow time t = 1 - s/T for diffusion step s (s = T(1 - t), InstaFlow's mapping)"

    public var metadata: [String: String] {
        [Key.kind: TeacherKind.diffusion.rawValue, Key.prediction: prediction.rawValue,
         Key.schedule: schedule.kind.rawValue, Key.betaStart: "\(schedule.betaStart)", Key.betaEnd: "\(schedule.betaEnd)",
         Key.trainSteps: "\(schedule.trainSteps)", Key.timeInput: DiffusionTeacher.timeInputDescription]
    }

    /// A checkpoint's kind: `teacher_kind` if present, else flow (checkpoints from before
    /// diffusion teachers existed are all rectified flows). An unknown kind is an error.
    public static func kind(metadata: [String: String], source: String) throws -> TeacherKind {
        guard let raw = metadata[Key.kind] else { return .flow }
        guard let k = TeacherKind(rawValue: raw) else {
            throw DiffusionError("\(source): metadata '\(Key.kind)' is '\(raw)'; valid: \(TeacherKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return k
    }

    /// The diffusion teacher a checkpoint describes; nil for a flow checkpoint. Every missing or
    /// malformed key is an error naming `source` and the key.
    public init?(metadata m: [String: String], source: String) throws {
        guard try DiffusionTeacher.kind(metadata: m, source: source) == .diffusion else { return nil }
        func value(_ key: String) throws -> String {
            guard let v = m[key] else { throw DiffusionError("\(source): a diffusion checkpoint's metadata needs '\(key)'") }
            return v
        }
        func number(_ key: String) throws -> Double {
            guard let d = Double(try value(key)), d.isFinite else { throw DiffusionError("\(source): metadata '\(key)' is not a number: '\(m[key] ?? "")'") }
            return d
        }
        do {
            let kind = try BetaSchedule(name: try value(Key.schedule))
            let pred = try DiffusionPrediction(name: try value(Key.prediction))
            guard let steps = Int(try value(Key.trainSteps)), steps >= 2, steps <= 100_000 else {
                throw DiffusionError("\(source): metadata '\(Key.trainSteps)' must be an integer in 2...100000, got '\(m[Key.trainSteps] ?? "")'")
            }
            let sched = try VPSchedule(kind: kind, trainSteps: steps, betaStart: try number(Key.betaStart), betaEnd: try number(Key.betaEnd))
            self.init(schedule: sched, prediction: pred)
        } catch let e as FlowError {
            throw DiffusionError("\(source): \(e.description)")
        }
    }

    /// The label files and logs show, e.g. "epsilon on scaled_linear(1000, 0.00085, 0.012)".
    public var name: String { "\(prediction.rawValue) on \(schedule.name)" }

    /// The network as a diffusion model: a diffusion step s enters as flow time 1 - s / T.
    /// `net` may carry text and guidance (guidance on eps or v is the same linear combination
    /// of the network's outputs as on a velocity).
    public func model(_ net: @escaping Velocity) -> DiffusionModel {
        let T = Float(schedule.trainSteps)
        return { x, s in try net(x, 1 - s / T) }
    }
}
