#if canImport(Glibc)
import Glibc
#endif

/// The one monotonic clock for timing inside the engine (thread-pool spin deadlines, op
/// profiling, the bench): CLOCK_MONOTONIC, a vDSO call without a system call.
public enum MonotonicClock {
    public static func nanoseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    public static func seconds() -> Double { Double(nanoseconds()) * 1e-9 }
}
