import Foundation

/// Learning rate per optimizer step: linear warmup, then constant or cosine decay to a floor.
/// `step` is the 0-based index of the step about to be taken, so the first step already uses
/// base / warmupSteps (no wasted step at lr 0).
public struct LRSchedule: Sendable, Equatable {
    public enum Decay: Sendable, Equatable {
        case constant
        /// Half-cosine from the base rate (end of warmup) to `floor` at `totalSteps`; `floor` after.
        case cosine(totalSteps: Int, floor: Double)
    }

    public var base: Double
    public var warmupSteps: Int
    public var decay: Decay

    public init(base: Double, warmupSteps: Int = 0, decay: Decay = .constant) {
        self.base = base
        self.warmupSteps = max(0, warmupSteps)
        self.decay = decay
    }

    public func lr(at step: Int) -> Double {
        if step < warmupSteps { return base * Double(step + 1) / Double(warmupSteps) }
        switch decay {
        case .constant:
            return base
        case let .cosine(total, floor):
            let span = total - warmupSteps
            if span <= 0 { return floor }
            let progress = min(1, max(0, Double(step - warmupSteps) / Double(span)))
            return floor + (base - floor) * 0.5 * (1 + cos(Double.pi * progress))
        }
    }
}
