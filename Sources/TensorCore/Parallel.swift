import Dispatch
import CBLAS

/// Thread settings for our own loops and for OpenBLAS, kept in step.
public enum Runtime {
    nonisolated(unsafe) private static var _threads: Int = max(1, min(2, ProcessInfoLite.cpuCount))

    /// Number of threads used by elementwise/reduction loops and by OpenBLAS.
    public static var threads: Int {
        get { _threads }
        set {
            _threads = max(1, newValue)
            openblas_set_num_threads(Int32(_threads))
        }
    }

    /// OpenBLAS's chosen kernel family (e.g. "SkylakeX", "Haswell", "Prescott").
    public static var blasCoreName: String {
        guard let p = openblas_get_corename() else { return "unknown" }
        return String(cString: p)
    }
}

enum ProcessInfoLite {
    static var cpuCount: Int { Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) }
}

/// Splits [0, count) into contiguous chunks run on `Runtime.threads` threads. Small work runs
/// inline: thread hand-off costs a few microseconds, more than a 10k-element loop.
public enum Parallel {
    public static let grain = 32_768

    @inlinable
    public static func chunks(_ count: Int, grain: Int = Parallel.grain, _ body: (Range<Int>) -> Void) {
        let threads = Runtime.threads
        if threads <= 1 || count <= grain {
            if count > 0 { body(0..<count) }
            return
        }
        let parts = min(threads, (count + grain - 1) / grain)
        let step = (count + parts - 1) / parts
        withoutActuallyEscaping(body) { body in
            DispatchQueue.concurrentPerform(iterations: parts) { p in
                let lo = p * step
                let hi = min(count, lo + step)
                if lo < hi { body(lo..<hi) }
            }
        }
    }

    /// Runs `count` independent items (e.g. rows, images) over the threads.
    @inlinable
    public static func items(_ count: Int, costPerItem: Int = 1, _ body: (Int) -> Void) {
        let threads = Runtime.threads
        if threads <= 1 || count <= 1 || count * costPerItem <= grain {
            for i in 0..<count { body(i) }
            return
        }
        let parts = min(threads, count)
        let step = (count + parts - 1) / parts
        withoutActuallyEscaping(body) { body in
            DispatchQueue.concurrentPerform(iterations: parts) { p in
                let lo = p * step
                let hi = min(count, lo + step)
                var i = lo
                while i < hi { body(i); i += 1 }
            }
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
