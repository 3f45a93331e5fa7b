import Foundation
import CMPI

/// The processes of one run: this process's rank and their number, and the few collective
/// operations data-parallel training and sharded pair generation need.
///
/// MPI is optional at run time. `Communicator.world` calls `MPI_Init` only when a launcher
/// (Open MPI's `mpirun`, or a PMIx launcher such as Slurm's `srun`) started the process; a
/// process started any other way is rank 0 of 1, and every collective returns at once without
/// touching MPI, so the tools behave exactly as without MPI.
///
/// All calls must come from the thread that first touched `world` (MPI_THREAD_FUNNELED): the
/// tools' main thread. MPI's default error handler aborts the whole job on a failed call, so
/// these functions do not throw.
public final class Communicator: @unchecked Sendable {
    public let rank: Int
    public let size: Int
    /// False for a process not started by an MPI launcher.
    public let usesMPI: Bool

    init(rank: Int, size: Int, usesMPI: Bool) { self.rank = rank; self.size = size; self.usesMPI = usesMPI }

    /// A process on its own (rank 0 of 1), whatever launched it: for tests and for tools that
    /// do not split work.
    public static let single = Communicator(rank: 0, size: 1, usesMPI: false)

    /// Every process of the job (MPI_COMM_WORLD), initialised on first use.
    public static let world: Communicator = launch()

    /// True when the environment says an MPI launcher started this process.
    public static func launchedByMPI(_ env: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        env["OMPI_COMM_WORLD_SIZE"] != nil || env["PMIX_RANK"] != nil
    }

    private static func launch() -> Communicator {
        guard launchedByMPI() else { return .single }
        var provided: Int32 = 0
        check(MPI_Init_thread(nil, nil, rf_MPI_THREAD_FUNNELED(), &provided), "MPI_Init_thread")
        var r: Int32 = 0, n: Int32 = 0
        check(MPI_Comm_rank(rf_MPI_COMM_WORLD(), &r), "MPI_Comm_rank")
        check(MPI_Comm_size(rf_MPI_COMM_WORLD(), &n), "MPI_Comm_size")
        // mpirun treats a process that exits without MPI_Finalize as failed; errors leave
        // through `abort`, never through here.
        atexit { _ = MPI_Finalize() }
        return Communicator(rank: Int(r), size: Int(n), usesMPI: true)
    }

    private static func check(_ rc: Int32, _ what: String) {
        // The default handler (MPI_ERRORS_ARE_FATAL) has already aborted on a real failure.
        precondition(rc == 0, "\(what) failed with MPI error \(rc)")
    }

    public var isRoot: Bool { rank == 0 }
    /// More than one process: work is split and results are combined.
    public var isDistributed: Bool { size > 1 }

    /// The part of `count` items (e.g. a global batch) this rank takes: contiguous, in rank
    /// order, sizes differing by at most one.
    public func slice(of count: Int) -> Range<Int> { slice(of: count, rank: rank) }

    public func slice(of count: Int, rank r: Int) -> Range<Int> { Communicator.slice(of: count, rank: r, ranks: size) }

    /// Rank r's part of `count` items split over `ranks`.
    public static func slice(of count: Int, rank r: Int, ranks: Int) -> Range<Int> {
        (r * count / ranks)..<((r + 1) * count / ranks)
    }

    /// MPI counts are Int32: long buffers go in pieces.
    private static let chunk = 1 << 28

    /// Sums `buffer` over all ranks, in place; every rank receives the same sum. The order of
    /// the additions is MPI's (by rank for two ranks), so a sum of floats can differ in the last
    /// bits from a single process's.
    public func allreduceSum(_ buffer: UnsafeMutablePointer<Float>, count: Int) {
        guard isDistributed else { return }
        var at = 0
        while at < count {
            let n = min(Communicator.chunk, count - at)
            Communicator.check(MPI_Allreduce(rf_MPI_IN_PLACE(), buffer + at, Int32(n), rf_MPI_FLOAT(), rf_MPI_SUM(),
                                             rf_MPI_COMM_WORLD()), "MPI_Allreduce")
            at += n
        }
    }

    public enum Reduction { case sum, max, min }

    /// Reduces a few doubles over all ranks (counters, timings, checks).
    public func allreduce(_ values: [Double], _ op: Reduction) -> [Double] {
        guard isDistributed, !values.isEmpty else { return values }
        var v = values
        let mpiOp = op == .sum ? rf_MPI_SUM() : op == .max ? rf_MPI_MAX() : rf_MPI_MIN()
        v.withUnsafeMutableBufferPointer { b in
            Communicator.check(MPI_Allreduce(rf_MPI_IN_PLACE(), b.baseAddress, Int32(b.count), rf_MPI_DOUBLE(), mpiOp,
                                             rf_MPI_COMM_WORLD()), "MPI_Allreduce")
        }
        return v
    }

    /// Copies `root`'s buffer to every rank.
    public func broadcast(_ buffer: UnsafeMutablePointer<Float>, count: Int, root: Int = 0) {
        guard isDistributed else { return }
        var at = 0
        while at < count {
            let n = min(Communicator.chunk, count - at)
            Communicator.check(MPI_Bcast(buffer + at, Int32(n), rf_MPI_FLOAT(), Int32(root), rf_MPI_COMM_WORLD()), "MPI_Bcast")
            at += n
        }
    }

    /// Every rank's `counts[rank]` floats from `mine`, concatenated in rank order into `out` (which
    /// holds the sum of `counts`) on every rank: copies, no arithmetic, so the result is bit-exact.
    public func allgather(_ mine: UnsafePointer<Float>, counts: [Int], into out: UnsafeMutablePointer<Float>) {
        precondition(counts.count == size, "allgather: \(counts.count) counts for \(size) ranks")
        guard isDistributed else { out.update(from: mine, count: counts[0]); return }
        precondition(counts.reduce(0, +) <= Int(Int32.max), "allgather: more than 2^31 floats")
        var displs: [Int32] = [], at: Int32 = 0
        for c in counts { displs.append(at); at += Int32(c) }
        let c32 = counts.map { Int32($0) }
        Communicator.check(MPI_Allgatherv(mine, c32[rank], rf_MPI_FLOAT(), out, c32, displs, rf_MPI_FLOAT(),
                                          rf_MPI_COMM_WORLD()), "MPI_Allgatherv")
    }

    /// Waits until every rank has arrived.
    public func barrier() {
        guard isDistributed else { return }
        Communicator.check(MPI_Barrier(rf_MPI_COMM_WORLD()), "MPI_Barrier")
    }

    /// Ends every process of the job with `code` (a rank that stops alone would leave the
    /// others waiting in a collective forever).
    public func abort(code: Int32) -> Never {
        if usesMPI { _ = MPI_Abort(rf_MPI_COMM_WORLD(), code) }
        exit(code)
    }
}
