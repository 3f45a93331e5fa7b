import Foundation

/// How much the tools say on stderr. Results (tables, output paths) go to stdout and are not
/// logged; everything else (stage banners, progress, notes, warnings, errors) goes through `Log`.
public enum LogLevel: Int, Comparable, Sendable {
    /// Stage banners, progress lines, notes.
    case info = 1
    /// Something the user should know although the run goes on.
    case warning = 2
    /// The run stops.
    case error = 3

    public static func < (a: LogLevel, b: LogLevel) -> Bool { a.rawValue < b.rawValue }
}

/// The one logger every tool and library layer uses: plain lines on stderr, so progress and
/// notes never mix with results on stdout. `--quiet` raises the level to `.warning`.
public enum Log {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var _level = LogLevel.info
    nonisolated(unsafe) private static var _sink: (String) -> Void = { text in
        FileHandle.standardError.write(Data(text.utf8))
    }

    /// Lines below this level are dropped.
    public static var level: LogLevel {
        get { lock.lock(); defer { lock.unlock() }; return _level }
        set { lock.lock(); _level = newValue; lock.unlock() }
    }

    /// Where lines go (stderr by default); tests capture them here.
    public static var sink: (String) -> Void {
        get { lock.lock(); defer { lock.unlock() }; return _sink }
        set { lock.lock(); _sink = newValue; lock.unlock() }
    }

    public static func enabled(_ l: LogLevel) -> Bool { l >= level }

    /// Raw text (no newline added): progress redraws use this.
    public static func write(_ text: String, level l: LogLevel = .info) {
        guard enabled(l) else { return }
        sink(text)
    }

    /// A line of information: `teacher: digits (1500 items) ...`.
    public static func info(_ line: String) { write(line + "\n", level: .info) }

    /// `note: ...`: worth knowing, nothing wrong.
    public static func note(_ line: String) { write("note: " + line + "\n", level: .info) }

    /// `warning: ...`: shown even with --quiet.
    public static func warning(_ line: String) { write("warning: " + line + "\n", level: .warning) }

    /// `error: ...`: the run stops after this.
    public static func error(_ line: String) { write("error: " + line + "\n", level: .error) }
}
