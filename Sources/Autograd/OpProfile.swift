import TensorCore

/// Time per op name, forward and backward, for profiling a model (`reflow-bench --profile-ops`).
/// Off by default: when on, each recorded op's forward is charged the time since the previous
/// recorded op ended (so glue code between ops counts toward the next op), and each pullback
/// its own time. Single-threaded use only (the caller's thread records).
public enum OpProfile {
    nonisolated(unsafe) public static var enabled = false
    nonisolated(unsafe) public private(set) static var forward: [String: (calls: Int, seconds: Double)] = [:]
    nonisolated(unsafe) public private(set) static var backward: [String: (calls: Int, seconds: Double)] = [:]
    nonisolated(unsafe) static var last = 0.0

    public static func reset() { forward = [:]; backward = [:]; last = now() }

    /// Marks the end of an op's forward computation.
    @inline(__always)
    static func forwardDone(_ op: String) {
        guard enabled else { return }
        let t = now()
        forward[op, default: (0, 0)].calls += 1
        forward[op, default: (0, 0)].seconds += t - last
        last = t
    }

    static func backwardDone(_ op: String, since start: Double) {
        let t = now()
        backward[op, default: (0, 0)].calls += 1
        backward[op, default: (0, 0)].seconds += t - start
        last = t
    }

    public static func now() -> Double { MonotonicClock.seconds() }
}
