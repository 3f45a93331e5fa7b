import Dispatch
import CBLAS

/// Thread settings for our own loops (OpenBLAS stays on one thread: see BLAS).
public enum Runtime {
    nonisolated(unsafe) private static var _threads: Int = max(1, min(2, ProcessInfoLite.cpuCount))

    /// Number of threads of our pool (elementwise loops, reductions, split sgemm, convolutions).
    public static var threads: Int {
        get { _threads }
        set { _threads = max(1, newValue) }
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

/// Persistent worker threads for `Parallel`. The caller runs part 0 itself. A worker that
/// finishes spins (with the CPU's pause hint, no system calls) for `spinNanos` waiting for the
/// next loop, which usually follows within microseconds, then sleeps on its semaphore; the
/// caller likewise spins briefly for the workers' parts before sleeping. Sleeping on every
/// hand-off cost ~10-50 us per parallel loop (futex wake + reschedule) and made 2 threads only
/// 1.2x one on a U-Net training step. Each handed part is claimed before it runs, by its worker
/// or, once the caller is done with part 0, by the caller: when another process holds the
/// worker's core, the caller runs the part itself instead of waiting a scheduler slice for it.
/// A nested or concurrent call (the pool already taken) runs its parts serially.
public enum ThreadPool {
    /// How long an idle thread spins before sleeping.
    public static let spinNanos: UInt64 = 100_000

    /// A counter, a "sleeping" flag and a "claimed" flag, shared through C atomics (sequentially
    /// consistent). A worker counts the tasks handed to it; the pool counts the parts still running.
    final class Flags: @unchecked Sendable {
        let p = UnsafeMutablePointer<Int>.allocate(capacity: 3)
        init() { p.initialize(repeating: 0, count: 3) }
        var counter: UnsafeMutablePointer<Int> { p }
        var sleeping: UnsafeMutablePointer<Int> { p + 1 }
        /// 0 while the handed part waits to run; whoever sets it to 1 runs it.
        var claimed: UnsafeMutablePointer<Int> { p + 2 }
    }

    final class Worker: @unchecked Sendable {
        let flags = Flags()
        let wake = DispatchSemaphore(value: 0)
        var task: ((Int) -> Void)?
        var index = 0

        func loop() -> Never {
            var seen = 0
            while true {
                seen = waitForTask(after: seen)
                // The caller may have run the part already (then it also counted it done). A
                // stale count can meet a newer hand-off's part here: task and index are that
                // part's, written before its claim flag was reset, so running it is right.
                if rf_atomic_cas(flags.claimed, 0, 1) != 0 {
                    runTask()
                    ThreadPool.finishPart()
                }
            }
        }

        /// Returns the new task count once the caller has handed over a task.
        func waitForTask(after seen: Int) -> Int {
            if let e = ThreadPool.spin(until: { let e = rf_atomic_load(flags.counter); return e != seen ? e : nil }) {
                return e
            }
            // Announce the sleep, then look again: either we see the new task count here, or the
            // caller (which bumps the count before it reads the flag) sees the flag and signals.
            // Only the count says a task is there; a wake-up without one sleeps again.
            while true {
                rf_atomic_store(flags.sleeping, 1)
                let e = rf_atomic_load(flags.counter)
                if e != seen {
                    if rf_atomic_cas(flags.sleeping, 1, 0) == 0 { wake.wait() }  // take the signal on its way
                    return e
                }
                wake.wait()
                let after = rf_atomic_load(flags.counter)
                if after != seen { return after }
            }
        }

        /// Out of line, so the worker's reference to the closure is gone before it signals
        /// (withoutActuallyEscaping checks that nothing holds it when `perform` returns).
        @inline(never) func runTask() { task!(index) }

        func hand(_ body: @escaping (Int) -> Void, index k: Int) {
            task = body
            index = k
            rf_atomic_store(flags.claimed, 0)
            _ = rf_atomic_add(flags.counter, 1)
            if rf_atomic_exchange(flags.sleeping, 0) != 0 { wake.signal() }
        }
    }

    nonisolated(unsafe) static var workers: [Worker] = []
    /// Parts still running, and whether the caller sleeps waiting for them.
    static let running = Flags()
    static let done = DispatchSemaphore(value: 0)
    nonisolated(unsafe) static let lock: UnsafeMutablePointer<pthread_mutex_t> = {
        let m = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
        pthread_mutex_init(m, nil)
        return m
    }()

    static func finishPart() {
        if rf_atomic_add(running.counter, -1) == 0 && rf_atomic_exchange(running.sleeping, 0) != 0 { done.signal() }
    }

    /// Spins until `check` returns a value or `spinNanos` pass.
    @inline(__always)
    static func spin<T>(until check: () -> T?) -> T? {
        var deadline: UInt64 = 0
        var i = 0
        while true {
            if let v = check() { return v }
            i += 1
            if i & 63 == 0 {
                let t = MonotonicClock.nanoseconds()
                if deadline == 0 { deadline = t + spinNanos } else if t > deadline { return nil }
            }
            rf_cpu_relax()
        }
    }

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
            rf_atomic_store(running.counter, parts - 1)
            for k in 1..<parts { workers[k - 1].hand(body, index: k) }
            body(0)
            // Parts no worker has started yet (descheduled, or still waking): run them here.
            for k in 1..<parts where rf_atomic_cas(workers[k - 1].flags.claimed, 0, 1) != 0 {
                body(k)
                _ = rf_atomic_add(running.counter, -1)
            }
            if spin(until: { rf_atomic_load(running.counter) == 0 ? true : nil }) == nil {
                // Only the count says the parts are done: a signal can be stale (a worker of an
                // earlier call, descheduled between its decrement and its exchange, signals late
                // and would otherwise release this call before its own parts finish).
                while rf_atomic_load(running.counter) != 0 {
                    rf_atomic_store(running.sleeping, 1)
                    if rf_atomic_load(running.counter) == 0 {
                        if rf_atomic_cas(running.sleeping, 1, 0) == 0 { done.wait() }  // take the signal on its way
                        break
                    }
                    done.wait()
                }
            }
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
