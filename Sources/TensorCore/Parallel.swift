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
        ThreadPool.perform(parts) { p in
            let lo = p * step
            let hi = min(count, lo + step)
            if lo < hi { body(lo..<hi) }
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
        ThreadPool.perform(parts) { p in
            let lo = p * step
            let hi = min(count, lo + step)
            var i = lo
            while i < hi { body(i); i += 1 }
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif

/// Persistent worker threads for `Parallel`. libdispatch's concurrentPerform on Linux often
/// wakes its second thread late (100+ us) or not at all, running both halves of a 2-way split
/// on the caller; these workers sleep on a semaphore each and start within ~20 us. The caller
/// runs part 0 itself. A nested or concurrent call (the pool already taken) runs serially.
public enum ThreadPool {
    final class Worker: @unchecked Sendable {
        let wake = DispatchSemaphore(value: 0)
        var task: ((Int) -> Void)?
        var index = 0
        func loop() -> Never {
            while true {
                wake.wait()
                runTask()
                ThreadPool.done.signal()
            }
        }
        /// Out of line, so the worker's reference to the closure is gone before it signals
        /// (withoutActuallyEscaping checks that nothing holds it when `perform` returns).
        @inline(never) func runTask() { task!(index) }
    }

    nonisolated(unsafe) static var workers: [Worker] = []
    static let done = DispatchSemaphore(value: 0)
    nonisolated(unsafe) static let lock: UnsafeMutablePointer<pthread_mutex_t> = {
        let m = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(m, nil)
        return m
    }()

    /// Runs body(0) ..< body(parts - 1), part 0 on the calling thread, and returns when all are done.
    public static func perform(_ parts: Int, _ body: (Int) -> Void) {
        if parts <= 1 { if parts == 1 { body(0) }; return }
        guard pthread_mutex_trylock(lock) == 0 else {
            for p in 0..<parts { body(p) }
            return
        }
        defer { pthread_mutex_unlock(lock) }
        while workers.count < parts - 1 { workers.append(spawn()) }
        withoutActuallyEscaping(body) { body in
            for k in 1..<parts {
                workers[k - 1].task = body
                workers[k - 1].index = k
                workers[k - 1].wake.signal()
            }
            body(0)
            for _ in 1..<parts { done.wait() }
            for k in 1..<parts { workers[k - 1].task = nil }
        }
    }

    static func spawn() -> Worker {
        let w = Worker()
        var tid = pthread_t()
        let ctx = Unmanaged.passRetained(w).toOpaque()
        let rc = pthread_create(&tid, nil, { ctx in
            Unmanaged<Worker>.fromOpaque(ctx!).takeUnretainedValue().loop()
        }, ctx)
        precondition(rc == 0, "ThreadPool: cannot start a worker thread (pthread_create returned \(rc))")
        pthread_detach(tid)
        return w
    }
}
