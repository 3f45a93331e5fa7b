import Foundation
import Formats
#if canImport(Glibc)
import Glibc
#endif

/// Another process holds the file's writer lock (callers must not suggest --overwrite).
public struct WriterBusyError: Error, CustomStringConvertible {
    public let description: String
}

/// One writer per triplet file. HDF5's own lock refuses a second writer that opens the file, but
/// `--overwrite` builds a new file and renames it over the old one, under a writer that keeps
/// committing rows to an inode nobody sees any more. A lock on a sidecar file (`.NAME.lock`),
/// held for the writer's life, refuses that too. The kernel drops it when the process dies, so a
/// kill -9 never leaves a stale lock; the sidecar itself stays (removing it would let two
/// writers lock two different inodes).
final class WriterLock {
    private var fd: Int32

    static func path(for file: String) -> String {
        let url = URL(fileURLWithPath: file)
        return url.deletingLastPathComponent().appendingPathComponent("." + url.lastPathComponent + ".lock").path
    }

    /// Nil when the folder cannot hold a lock file (read-only): nothing can be written there,
    /// and the writer reports that itself.
    init?(for file: String) throws {
        let lockPath = WriterLock.path(for: file)
        fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        if fd < 0 { return nil }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let busy = errno == EWOULDBLOCK
            Glibc.close(fd)
            if !busy { return nil }
            throw WriterBusyError(description: "\(file): another process is writing this file right now (it holds "
                + "\(lockPath)); wait for it to finish or stop it. Starting over with --overwrite is refused while it runs.")
        }
    }

    func release() {
        guard fd >= 0 else { return }
        Glibc.close(fd)  // closing the only descriptor drops the flock
        fd = -1
    }

    deinit { release() }
}

extension TripletWriter {
    /// Removes the temporaries a killed writer of `path` left beside it (`NAME.partial-PID` from
    /// creating the file, `NAME.salvage-PID` from rebuilding it, and their lock sidecars) when that
    /// PID is gone. Returns the names removed.
    @discardableResult
    public static func removeStaleTemporaries(besides path: String) -> [String] {
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent().path, base = url.lastPathComponent
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return [] }
        var removed: [String] = []
        for name in names.sorted() {
            let plain = name.hasPrefix(".") && name.hasSuffix(".lock") ? String(name.dropFirst().dropLast(5)) : name
            guard let pid = ["partial", "salvage"].lazy.compactMap({ kind -> pid_t? in
                let prefix = base + "." + kind + "-"
                return plain.hasPrefix(prefix) ? pid_t(plain.dropFirst(prefix.count)) : nil
            }).first, pid > 0, pid != getpid() else { continue }
            // kill(pid, 0): ESRCH means no such process; EPERM means alive but not ours.
            if kill(pid, 0) == 0 || errno != ESRCH { continue }
            if unlink(dir + "/" + name) == 0 { removed.append(name) }
        }
        return removed
    }
}
