import CBLAS
#if canImport(Glibc)
import Glibc
#endif

/// OpenBLAS 0.3.21 (Debian 12) identifies recent Xeon/EPYC cores as "Prescott" and runs sgemm
/// about 5x slower. It reads OPENBLAS_CORETYPE only when it loads, so an executable that finds
/// it unset re-executes itself once with the right value. A user's own setting always wins.
public enum BLASLauncher {
    public static func coreTypeForThisCPU() -> String? {
        guard let f = fopen("/proc/cpuinfo", "r") else { return nil }
        defer { fclose(f) }
        var line: UnsafeMutablePointer<CChar>? = nil
        var cap = 0
        defer { free(line) }
        while getline(&line, &cap, f) > 0 {
            let s = String(cString: line!)
            if s.hasPrefix("flags") {
                let flags = Set(s.split(separator: " ").map { $0.trimmingCharacters() })
                if flags.contains("avx512f") && flags.contains("avx512bw") && flags.contains("avx512vl") { return "SkylakeX" }
                if flags.contains("avx2") && flags.contains("fma") { return "Haswell" }
                return nil
            }
        }
        return nil
    }

    /// Call first thing in `main`. Returns only when no re-exec was needed (or it failed).
    /// Also keeps large activation buffers in the heap: glibc otherwise unmaps and re-faults
    /// multi-MB blocks every training step (5-10% of a step in reflow-bench's profile).
    public static func reexecIfNeeded() {
        rf_keep_large_allocations()
        if getenv("OPENBLAS_CORETYPE") != nil || getenv("REFLOW_NO_REEXEC") != nil { return }
        guard let core = coreTypeForThisCPU() else { return }
        let current = Runtime.blasCoreName.lowercased()
        if current != "prescott" && current != "unknown" && current != "core2" && current != "nehalem" { return }
        setenv("OPENBLAS_CORETYPE", core, 1)
        setenv("REFLOW_NO_REEXEC", "1", 1)
        let args = CommandLine.unsafeArgv
        execv("/proc/self/exe", args)
        // execv returned: carry on with the slow kernels rather than fail.
    }
}

extension Substring {
    func trimmingCharacters() -> String {
        var s = self
        while let c = s.last, c == "\n" || c == " " || c == "\t" { s = s.dropLast() }
        return String(s)
    }
}
