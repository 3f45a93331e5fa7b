import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Training progress on stderr:
///
///     teacher   120/2000  loss 0.1234  12.3 it/s  ETA 2m33s
///
/// On a terminal one line is redrawn in place (at most 10 times a second). Elsewhere (CI logs,
/// `> file`) a plain line is printed every `plainInterval` seconds (and every `plainEverySteps`
/// steps if set), so logs stay short and readable.
public final class Progress {
    public let total: Int
    public let label: String
    /// Redraw one line with `\r` (true on a terminal).
    public let interactive: Bool
    public var plainInterval: Double
    /// Also print a plain line when `step` is a multiple of this (0 = by time only).
    public var plainEverySteps: Int

    private let output: (String) -> Void
    private let startTime: Double
    private let startStep: Int
    private var lastDraw: Double
    private var lastStep: Int
    private var lastValues: [(String, Double)] = []
    private var lineShown = false
    private var finished = false

    /// `startStep` is where a resumed run starts, so the rate counts only this session's steps.
    /// `output` receives each piece of text (default: `Log`, at info level).
    public init(total: Int, label: String, startStep: Int = 0, interactive: Bool? = nil,
                plainInterval: Double = 10, plainEverySteps: Int = 0, output: ((String) -> Void)? = nil) {
        self.total = total
        self.label = label
        self.interactive = interactive ?? (isatty(STDERR_FILENO) == 1)
        self.plainInterval = plainInterval
        self.plainEverySteps = plainEverySteps
        self.output = output ?? { Log.write($0) }
        startTime = Progress.now()
        lastDraw = startTime
        self.startStep = startStep
        lastStep = startStep
    }

    /// Reports that `step` steps are done, with values to show (e.g. `[("loss", 0.12)]`).
    public func update(step: Int, values: [(String, Double)] = []) {
        lastStep = step
        lastValues = values
        let t = Progress.now()
        if interactive {
            guard t - lastDraw >= 0.1 || step >= total else { return }
            output("\r" + currentLine(now: t) + "\u{1B}[K")
            lineShown = true
        } else {
            let byStep = plainEverySteps > 0 && step % plainEverySteps == 0
            guard byStep || t - lastDraw >= plainInterval else { return }
            output(currentLine(now: t) + "\n")
        }
        lastDraw = t
    }

    /// Prints a message on its own line without breaking the progress line.
    public func message(_ text: String) {
        if interactive && lineShown {
            output("\r\u{1B}[K" + text + "\n" + currentLine(now: Progress.now()) + "\u{1B}[K")
        } else {
            output(text + "\n")
        }
    }

    /// Prints the final line: `label  2000/2000  loss 0.0123  45.6 it/s  done in 44s`.
    public func finish() {
        guard !finished else { return }
        finished = true
        let t = Progress.now()
        let elapsed = t - startTime
        let line = Progress.line(label: label, step: lastStep, total: total, values: lastValues,
                                 rate: rate(now: t), tail: "done in " + Progress.formatDuration(elapsed))
        output((interactive ? "\r" : "") + line + (interactive ? "\u{1B}[K\n" : "\n"))
    }

    private func rate(now t: Double) -> Double {
        let dt = t - startTime
        return dt > 0 ? Double(lastStep - startStep) / dt : 0
    }

    private func currentLine(now t: Double) -> String {
        let r = rate(now: t)
        let eta = r > 0 ? Double(total - lastStep) / r : .nan
        return Progress.line(label: label, step: lastStep, total: total, values: lastValues,
                             rate: r, tail: "ETA " + Progress.formatDuration(eta))
    }

    private static func now() -> Double {
        Double(DispatchTime.now().uptimeNanoseconds) * 1e-9
    }

    // MARK: Formatting (pure, tested)

    /// `label  step/total  name value ...  rate  tail`; the step is padded to the width of total
    /// so the line does not jitter as it grows.
    public static func line(label: String, step: Int, total: Int, values: [(String, Double)],
                            rate: Double, tail: String) -> String {
        let t = String(total)
        let s = String(step)
        var parts = [label, String(repeating: " ", count: max(0, t.count - s.count)) + s + "/" + t]
        parts += values.map { "\($0.0) \(formatValue($0.1))" }
        parts.append(formatRate(rate))
        if !tail.isEmpty { parts.append(tail) }
        return parts.joined(separator: "  ")
    }

    /// `42s`, `1m05s`, `2h03m`; `?` when unknown (no rate yet, infinite or negative).
    public static func formatDuration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0, seconds < 1e9 else { return "?" }
        let s = Int(seconds.rounded())
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m" + pad2(s % 60) + "s" }
        let m = (s + 30) / 60 // hours and minutes: round to the minute
        return "\(m / 60)h" + pad2(m % 60) + "m"
    }

    /// `12.3 it/s`, or `2.5 s/it` when slower than one step a second.
    public static func formatRate(_ r: Double) -> String {
        guard r.isFinite, r > 0 else { return "-- it/s" }
        if r >= 1 { return String(format: "%.1f it/s", r) }
        return String(format: "%.1f s/it", 1 / r)
    }

    /// Four decimals for everyday magnitudes, scientific for tiny or huge ones (learning rates).
    public static func formatValue(_ v: Double) -> String {
        if v == 0 { return "0" }
        guard v.isFinite else { return v.isNaN ? "nan" : (v > 0 ? "inf" : "-inf") }
        let a = abs(v)
        if a >= 1e-3 && a < 1e5 { return String(format: "%.4f", v) }
        return String(format: "%.3e", v)
    }

    private static func pad2(_ x: Int) -> String { x < 10 ? "0\(x)" : "\(x)" }
}
