import Foundation
import TensorCore

struct Result {
    let model: String, unit: String, steps: Int, warmup: Int
    let params: Int, torchParams: Int?
    let ours: [Double], torch: [Double]
    /// bench_torch.py's comparison of its outputs with ours (unet rows), e.g. "velocity max |diff| 2e-6".
    let check: String?
    /// Median over repeats of our process's system CPU time / (user + system) while measuring.
    let systemShare: Double

    static func markdownTable(_ rs: [Result]) -> String {
        var s = "| row | params (ours / torch) | iterations x repeats | unit | ours (median) | ours min-max | ours sys time | torch (median) | torch min-max | ours/torch |\n"
        s += "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|\n"
        for r in rs {
            let om = median(r.ours)
            let range = { (xs: [Double]) in String(format: "%.2f-%.2f", xs.min()!, xs.max()!) }
            s += "| \(r.model) | \(r.params) / \(r.torchParams.map(String.init) ?? "-") "
            if r.torch.isEmpty {
                s += String(format: "| %d x %d | %@ | %.2f | %@ | %.1f%% | - | - | - |\n", r.steps, r.ours.count, r.unit, om, range(r.ours),
                            100 * r.systemShare)
            } else {
                let tm = median(r.torch)
                s += String(format: "| %d x %d | %@ | %.2f | %@ | %.1f%% | %.2f | %@ | **%.2f** |\n",
                            r.steps, r.ours.count, r.unit, om, range(r.ours), 100 * r.systemShare, tm, range(r.torch), om / tm)
            }
        }
        return s
    }
}

struct Facts {
    let threads: Int, blasCore: String, cpu: String, cores: Int, torch: String, loadBefore: String
    let malloc: String

    var markdownHeader: String {
        """
        ## reflow-bench

        - threads: \(threads) (our pool; OpenBLAS on one thread inside it; torch.set_num_threads(\(threads)))
        - OpenBLAS core: \(blasCore) (OPENBLAS_CORETYPE=\(ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? "unset"))
        - CPU: \(cpu), \(cores) online cores
        - torch: \(torch)
        - malloc (ours): \(malloc)

        """
    }

    /// Back to glibc's initial thresholds (BLASLauncher keeps large blocks by default).
    static func defaultMalloc() {
        // <malloc.h> is not in Swift's Glibc module: M_MMAP_THRESHOLD = -3, M_TRIM_THRESHOLD = -1.
        _ = glibcMallopt(-3, 128 << 10)
        _ = glibcMallopt(-1, 128 << 10)
    }

    /// "model name" from /proc/cpuinfo, with family/model (VMs often report only "AMD EPYC")
    /// and whether AVX-512 is there.
    static func cpuModel() -> String {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "unknown" }
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = line[..<colon].trimmingCharacters(in: .whitespaces)
            if fields[key] == nil { fields[key] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces) }
        }
        let name = fields["model name"] ?? "unknown"
        let avx512 = (fields["flags"] ?? "").split(separator: " ").contains("avx512f")
        return "\(name) (family \(fields["cpu family"] ?? "?"), model \(fields["model"] ?? "?")\(avx512 ? ", AVX-512" : ""))"
    }

    static func loadAverage() -> String {
        guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return "?" }
        return text.split(separator: " ").first.map(String.init) ?? "?"
    }
}

@_silgen_name("mallopt")
func glibcMallopt(_ param: Int32, _ value: Int32) -> Int32

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    if s.isEmpty { return .nan }
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

/// Monotonic time in seconds.
func now() -> Double { MonotonicClock.seconds() }

/// This process's user and system CPU seconds (all threads), from getrusage.
struct CPUTimes {
    let user: Double, system: Double

    static func now() -> CPUTimes {
        var u = rusage()
        getrusage(RUSAGE_SELF.rawValue, &u)
        func sec(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) * 1e-6 }
        return CPUTimes(user: sec(u.ru_utime), system: sec(u.ru_stime))
    }

    func systemShare(since a: CPUTimes) -> Double {
        let us = user - a.user, sy = system - a.system
        return us + sy > 0 ? sy / (us + sy) : 0
    }
}
