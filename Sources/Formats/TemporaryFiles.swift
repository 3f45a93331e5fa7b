import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// `atomicWrite`'s temporaries are ".<name>.tmp-<pid>-<random>" beside the target. Two ways one
// can outlive its write, each handled here:
// - SIGINT / SIGTERM / SIGHUP while a write is under way: the handler below unlinks every
//   temporary in flight, restores the default action and re-raises, so the process still ends
//   by the signal (exit status as before) and the old file stays in place.
// - SIGKILL (or power loss): nothing can run, so the next run removes temporaries whose
//   writer is dead (`removeStaleTemporaries`).

/// Paths of the temporaries being written, in fixed C buffers a signal handler can read: no
/// allocation, no Swift runtime calls, no lock on the handler's side.
enum TemporaryRegistry {
    static let slotCount = 32
    static let pathBytes = Int(PATH_MAX)
    nonisolated(unsafe) static let paths: UnsafeMutablePointer<CChar> = {
        let p = UnsafeMutablePointer<CChar>.allocate(capacity: slotCount * pathBytes)
        p.initialize(repeating: 0, count: slotCount * pathBytes)
        return p
    }()
    /// 1 while slot i holds a live temporary. Set after the path bytes, cleared before reuse.
    nonisolated(unsafe) static let inUse: UnsafeMutablePointer<Int32> = {
        let p = UnsafeMutablePointer<Int32>.allocate(capacity: slotCount)
        p.initialize(repeating: 0, count: slotCount)
        return p
    }()
    static let lock = NSLock()
    /// Installing on first use keeps processes that never write a file untouched.
    nonisolated(unsafe) static var installed = false

    /// Records `path` (before the file is created, so no moment exists where the file is there
    /// but unknown to the handler). Returns the slot, or nil when all are busy or the path is
    /// too long (then only the start-up sweep can remove it after a signal).
    static func register(_ path: String) -> Int? {
        lock.lock(); defer { lock.unlock() }
        if !installed { installed = true; installHandlers() }
        let bytes = Array(path.utf8)
        guard bytes.count < pathBytes else { return nil }
        for i in 0..<slotCount where inUse[i] == 0 {
            let dst = paths + i * pathBytes
            for (j, b) in bytes.enumerated() { dst[j] = CChar(bitPattern: b) }
            dst[bytes.count] = 0
            inUse[i] = 1
            return i
        }
        return nil
    }

    static func unregister(_ slot: Int?) {
        guard let slot else { return }
        lock.lock(); defer { lock.unlock() }
        inUse[slot] = 0
    }

    static func installHandlers() {
        _ = paths; _ = inUse  // initialise the globals now, not inside the handler
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            // Only where the default action is in force: an ignored signal (nohup) stays
            // ignored, and a handler someone else installed stays theirs.
            let old = signal(sig, abandonTemporariesAndReraise)
            if unsafeBitCast(old, to: Int.self) != 0 { signal(sig, old) }
        }
    }
}

/// Async-signal-safe: unlink(2), signal(2) and raise(3) only.
private func abandonTemporariesAndReraise(_ sig: Int32) {
    let paths = TemporaryRegistry.paths, inUse = TemporaryRegistry.inUse
    for i in 0..<TemporaryRegistry.slotCount where inUse[i] != 0 {
        unlink(paths + i * TemporaryRegistry.pathBytes)
    }
    signal(sig, SIG_DFL)
    raise(sig)  // delivered when the handler returns: the process ends by the signal
}

/// Whether `name` is one of atomicWrite's temporaries, and the PID of the process writing it.
func temporaryWriterPID(_ name: String) -> pid_t? {
    // ".<target>.tmp-<pid>-<random>"
    guard name.hasPrefix("."), let r = name.range(of: ".tmp-", options: .backwards) else { return nil }
    let parts = name[r.upperBound...].split(separator: "-", omittingEmptySubsequences: false)
    guard parts.count == 2, let pid = pid_t(parts[0]), pid > 0, UInt32(parts[1]) != nil else { return nil }
    return pid
}

/// Removes, from `dir`, temporaries left by an `atomicWrite` whose process is gone (killed with
/// SIGKILL mid-write). Temporaries of live processes (another writer, or this one) stay.
/// Returns the names removed. A missing folder removes nothing.
@discardableResult
public func removeStaleTemporaries(in dir: String) -> [String] {
    guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return [] }
    var removed: [String] = []
    for name in names.sorted() {
        guard let pid = temporaryWriterPID(name), pid != getpid() else { continue }
        // kill(pid, 0): ESRCH means no such process; EPERM means alive but not ours.
        if kill(pid, 0) == 0 || errno != ESRCH { continue }
        if unlink(dir + "/" + name) == 0 { removed.append(name) }
    }
    return removed
}
