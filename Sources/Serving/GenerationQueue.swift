import Dispatch
import Foundation

/// Runs generations one at a time on a thread of its own, holding at most `maxPending`
/// requests (running or waiting). One at a time because a model switches to eval mode while it
/// samples and the engine's thread pool already uses every core; off Swift's cooperative pool
/// because a solve blocks its thread for its whole length.
public final class GenerationQueue: @unchecked Sendable {
    let maxPending: Int
    private let lock = NSLock()
    private var pending = 0
    private let worker = DispatchQueue(label: "reflow.serve.generation")

    public init(maxPending: Int) { self.maxPending = maxPending }

    /// Runs `work` once its turn comes, unless `deadline` has passed by then (504). Throws 503
    /// when `maxPending` requests are already in.
    public func run<T>(deadline: Date, limit: Double, _ work: @escaping () throws -> T) async throws -> T {
        guard enter() else {
            throw ServeError(.serviceUnavailable, "busy: \(maxPending) requests are already waiting or running; try again shortly")
        }
        return try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, Error>) in
            worker.async {
                let result = Result { () throws -> T in
                    try checkDeadline(deadline, limit: limit)
                    return try work()
                }
                self.leave()  // before the answer, so that a client's next request finds the slot free
                c.resume(with: result)
            }
        }
    }

    /// Takes a slot if one is free.
    private func enter() -> Bool {
        lock.lock(); defer { lock.unlock() }
        guard pending < maxPending else { return false }
        pending += 1
        return true
    }

    private func leave() { lock.lock(); pending -= 1; lock.unlock() }
}

/// The error a request gets once its time is up (checked before each function evaluation).
func checkDeadline(_ deadline: Date, limit: Double) throws {
    if Date() >= deadline {
        throw ServeError(.gatewayTimeout, "time limit: not answered within \(limit) s (reflow serve --time-limit), queue wait included; ask for fewer steps or images")
    }
}
