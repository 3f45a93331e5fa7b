import Foundation
import Formats
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A file-system error with the path and the OS's reason.
public struct RunFolderError: Error, CustomStringConvertible, LocalizedError {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
    public var errorDescription: String? { message }

    static func system(_ what: String, _ path: String) -> RunFolderError {
        RunFolderError("\(what) \(path): \(String(cString: strerror(errno)))")
    }
}

/// The folder of one run, `<root>/<name>/`:
///
///     config.yaml      resolved config snapshot
///     metrics.jsonl    one JSON object per line
///     samples/         sample grids (PNG)
///     checkpoints/     weights and resume state
///     results.md       the results table
///
/// An existing folder is reused (a resumed run appends to its metrics).
public struct RunFolder: CustomStringConvertible {
    /// `<root>/<name>`.
    public let path: String

    /// Creates the folder and its `samples/` and `checkpoints/` (and any missing parents).
    public init(root: String, name: String) throws {
        let parts = name.split(separator: "/", omittingEmptySubsequences: false)
        guard !name.isEmpty, !parts.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else {
            throw RunFolderError("invalid run name '\(name)'")
        }
        path = root.isEmpty ? name : (root.hasSuffix("/") ? root + name : root + "/" + name)
        // The highest folder of the path this call creates (the run folder, or a new output root).
        var top: String?
        var probe = URL(fileURLWithPath: path)
        while !FileManager.default.fileExists(atPath: probe.path) {
            top = probe.path
            let parent = probe.deletingLastPathComponent()
            if parent.path == probe.path { break }
            probe = parent
        }
        if let top { RunFolder.created[URL(fileURLWithPath: path).path] = top }
        for dir in [path, samplesPath, checkpointsPath] {
            do {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            } catch {
                throw RunFolderError("cannot create \(dir): \(error.localizedDescription)")
            }
        }
    }

    public var configPath: String { file("config.yaml") }
    public var metricsPath: String { file("metrics.jsonl") }
    public var samplesPath: String { file("samples") }
    public var checkpointsPath: String { file("checkpoints") }
    public var resultsPath: String { file("results.md") }

    /// A path inside the run folder.
    public func file(_ relative: String) -> String { path + "/" + relative }

    /// Writes the config snapshot (e.g. `dumpConfig(config)`) atomically.
    public func writeConfig(_ yaml: String) throws { try atomicWrite(yaml, to: configPath) }

    /// Writes the results table atomically.
    public func writeResults(_ markdown: String) throws { try atomicWrite(markdown, to: resultsPath) }

    /// Opens `metrics.jsonl` for appending.
    public func openMetrics() throws -> MetricsLog { try MetricsLog(path: metricsPath) }

    public var description: String { path }

    nonisolated(unsafe) private static var _created: [String: String] = [:]
    private static let lock = NSLock()
    /// Each new run folder with the highest folder its creation made (absolute paths; run
    /// folders this process reused are not here).
    static var created: [String: String] {
        get { lock.lock(); defer { lock.unlock() }; return _created }
        set { lock.lock(); _created = newValue; lock.unlock() }
    }

    /// Removes each run folder this process created (with the output root, when it made that
    /// too) that holds nothing but its config snapshot and empty folders: a command that failed
    /// before doing any work leaves no run behind. A folder with any other file (metrics, a
    /// checkpoint, a sample grid) is kept, and so is every folder that existed before. Tools
    /// call it before exiting with an error; `under` limits it to folders whose path starts with
    /// it (tests).
    public static func removeUnusedNewFolders(under prefix: String = "") {
        let fm = FileManager.default
        for (dir, top) in created where dir.hasPrefix(prefix) {
            guard let items = fm.enumerator(atPath: dir) else { continue }
            var unused = true
            for case let item as String in items where item != "config.yaml" {
                var isDir: ObjCBool = false
                if !fm.fileExists(atPath: dir + "/" + item, isDirectory: &isDir) || !isDir.boolValue { unused = false; break }
            }
            if unused {
                try? fm.removeItem(atPath: dir)
                // Then the output root folders it made, while empty.
                var parent = URL(fileURLWithPath: dir)
                while parent.path != top && parent.path.hasPrefix(top) {
                    parent.deleteLastPathComponent()
                    guard (try? fm.contentsOfDirectory(atPath: parent.path))?.isEmpty == true else { break }
                    try? fm.removeItem(atPath: parent.path)
                }
            }
            created[dir] = nil
        }
    }
}
