import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The one way this toolkit replaces a file (checkpoints, PNGs, configs, results, metrics
// rewrites): a temporary sibling, fsync, rename, fsync of the folder. A crash or kill at any
// moment leaves the old file or the complete new one, never a torn one. A temporary left by
// SIGKILL is removed by the next run's `removeStaleTemporaries`; on SIGINT/SIGTERM/SIGHUP the
// write is abandoned and its temporary unlinked (TemporaryFiles.swift).

/// A file-system failure, naming the file and the OS's reason.
public struct FileError: Error, CustomStringConvertible, LocalizedError {
    public let path: String
    public let message: String
    public init(path: String, _ message: String) { self.path = path; self.message = message }
    public var description: String { "\(path): \(message)" }
    public var errorDescription: String? { description }

    /// `message: <strerror(errno)>`.
    public static func system(_ path: String, _ message: String) -> FileError {
        FileError(path: path, "\(message): \(String(cString: strerror(errno)))")
    }
}

/// Sequential writes to a POSIX file descriptor, retrying short writes and EINTR.
public struct FileSink {
    let fd: Int32
    let path: String

    public init(fd: Int32, path: String) { self.fd = fd; self.path = path }

    public func write(_ p: UnsafeRawPointer, _ count: Int) throws {
        var done = 0
        while done < count {
            #if canImport(Glibc)
            let r = Glibc.write(fd, p + done, count - done)
            #else
            let r = Darwin.write(fd, p + done, count - done)
            #endif
            if r < 0 {
                if errno == EINTR { continue }
                throw FileError.system(path, "write failed")
            }
            done += r
        }
    }

    public func write(_ data: Data) throws {
        try data.withUnsafeBytes { raw in
            if let base = raw.baseAddress { try write(base, raw.count) }
        }
    }
}

/// Writes `path` through `body` atomically (see the top of this file). The temporary file is
/// removed on any failure; errors are `FileError`s naming `path`.
public func atomicWrite(to url: URL, _ body: (FileSink) throws -> Void) throws {
    let path = url.path
    let dir = url.deletingLastPathComponent().path
    let tmp = "\(dir)/.\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    let slot = TemporaryRegistry.register(tmp)
    defer { TemporaryRegistry.unregister(slot) }
    let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
    if fd < 0 {
        // Name what the user can fix (the folder), not our temporary file.
        let err = errno
        var isDir: ObjCBool = false
        if !FileManager.default.fileExists(atPath: dir, isDirectory: &isDir) {
            throw FileError(path: path, "cannot write: the folder \(dir) does not exist")
        }
        if !isDir.boolValue { throw FileError(path: path, "cannot write: \(dir) is not a folder") }
        errno = err
        throw FileError.system(path, "cannot create a file in \(dir)")
    }
    var closed = false
    do {
        try body(FileSink(fd: fd, path: path))
        if fsync(fd) != 0 { throw FileError.system(path, "fsync failed") }
        closed = true
        if close(fd) != 0 { throw FileError.system(path, "close failed") }
        if rename(tmp, path) != 0 { throw FileError.system(path, "cannot rename the temporary file into place") }
    } catch {
        if !closed { close(fd) }
        unlink(tmp)
        throw error
    }
    // Make the rename itself durable; failing here loses nothing already visible, so ignore it.
    let dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if dfd >= 0 { _ = fsync(dfd); close(dfd) }
}

/// `atomicWrite` of bytes.
public func atomicWrite(_ data: Data, to path: String) throws {
    try atomicWrite(to: URL(fileURLWithPath: path)) { try $0.write(data) }
}

/// `atomicWrite` of text (UTF-8).
public func atomicWrite(_ text: String, to path: String) throws {
    try atomicWrite(Data(text.utf8), to: path)
}
