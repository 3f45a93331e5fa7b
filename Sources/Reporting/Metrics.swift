import Foundation
import ConfigKit
import Formats
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One value in a metrics line.
public enum MetricValue: Equatable, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByStringLiteral, ExpressibleByBooleanLiteral {
    case int(Int)
    case double(Double)
    /// Written with Float's shortest text (0.1, not 0.10000000149011612).
    case float(Float)
    case string(String)
    case bool(Bool)

    public init(integerLiteral v: Int) { self = .int(v) }
    public init(floatLiteral v: Double) { self = .double(v) }
    public init(stringLiteral v: String) { self = .string(v) }
    public init(booleanLiteral v: Bool) { self = .bool(v) }

    /// JSON text. NaN and infinities, which JSON lacks, become null.
    public var json: String {
        switch self {
        case .int(let v): return String(v)
        case .double(let v): return v.isFinite ? v.description : "null"
        case .float(let v): return v.isFinite ? v.description : "null"
        case .string(let s): return jsonString(s)
        case .bool(let b): return b ? "true" : "false"
        }
    }
}

/// A JSON string literal: the YAML double-quoted form (ConfigNode.swift) uses JSON's escapes.
private func jsonString(_ s: String) -> String { yamlDoubleQuoted(s) }

/// `metrics.jsonl`: one JSON object per line, keys in the order given. Each line goes out in a
/// single `write` to a file opened with O_APPEND, so it is on disk (in the page cache) when
/// `append` returns, and a crash leaves at most the last line cut.
public final class MetricsLog {
    public let path: String
    private let fd: Int32
    private let lock = NSLock()

    /// Opens (creating if needed) `path` for appending.
    public init(path: String) throws {
        self.path = path
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw RunFolderError.system("cannot open", path) }
    }

    deinit { close(fd) }

    public func append(_ fields: KeyValuePairs<String, MetricValue>) throws {
        try append(fields.map { ($0.key, $0.value) })
    }

    public func append(_ fields: [(String, MetricValue)]) throws {
        let line = MetricsLog.jsonLine(fields) + "\n"
        lock.lock()
        defer { lock.unlock() }
        try FileSink(fd: fd, path: path).write(Data(line.utf8))
    }

    /// `{"step": step, <extra...>, <values...>}`: the usual training line.
    public func log(step: Int, _ values: [(String, Double)], extra: [(String, MetricValue)] = []) throws {
        try append([("step", .int(step))] + extra + values.map { ($0.0, .double($0.1)) })
    }

    /// One JSON object, no newline.
    public static func jsonLine(_ fields: [(String, MetricValue)]) -> String {
        "{" + fields.map { jsonString($0.0) + ": " + $0.1.json }.joined(separator: ", ") + "}"
    }

    /// Reads a metrics file back (one dictionary per non-empty line), e.g. for results tables.
    public static func read(path: String) throws -> [[String: Any]] {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw RunFolderError("cannot read \(path): \(error.localizedDescription)")
        }
        var rows: [[String: Any]] = []
        for (i, line) in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() where !line.isEmpty {
            guard let obj = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else {
                throw RunFolderError("\(path): line \(i + 1) is not a JSON object")
            }
            rows.append(obj)
        }
        return rows
    }
}

extension MetricsLog {
    /// Drops lines of `stage` logged after `step` (a killed run may have logged past its last
    /// checkpoint; the resumed run logs those steps again).
    public static func truncate(path: String, afterStep step: Int, stage: String) throws {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return }
        var kept: [Substring] = []
        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            if let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
               obj["stage"] as? String == stage, let s = obj["step"] as? Int, s > step { continue }
            kept.append(line)
        }
        try atomicWrite(kept.map { $0 + "\n" }.joined(), to: path)
    }
}
