import Foundation
import Distributed
import TripletStore
import Models
import Experiments
import Sampling

/// A pair job split over the ranks of `mpirun -np K`: rank r writes shard r/K (whole batches of
/// a contiguous range of pair indices) to `<output>.part-r-of-K`, then rank 0 merges the parts
/// into `output`, the file one process writes, and removes them. Re-running the same command
/// after a kill of any rank resumes each part where it stopped; a complete `output` is left as is.
/// Without mpirun (one rank) this is `generatePairs`.
@discardableResult
public func generatePairs(_ r: PairsRequest, over comm: Communicator) throws -> PairsResult {
    guard comm.isDistributed else { return try generatePairs(r) }
    guard r.shard == nil else {
        throw ModelError("pairs: --shard and mpirun -np \(comm.size) both split the job; use one of them")
    }
    // Rank 0 decides for all whether the merged file is already done.
    let done = comm.isRoot && !r.overwrite && (try? isComplete(r)) == true
    if comm.allreduce([done ? 1 : 0], .max)[0] > 0 {
        return PairsResult(path: r.output, rows: r.count, generated: 0, resumedFrom: r.count, meanNFE: nil, seconds: 0)
    }
    let parts = (0..<comm.size).map { "\(r.output).part-\($0)-of-\(comm.size)" }
    var mine = r
    mine.shard = Shard(index: comm.rank, count: comm.size)
    mine.output = parts[comm.rank]
    let p = try generatePairs(mine)
    // Waits for every part (an error on a rank has ended the job); sums what the ranks did.
    let sums = comm.allreduce([Double(p.generated), Double(p.resumedFrom), p.meanNFE ?? 0, p.meanNFE == nil ? 0 : 1], .sum)
    let seconds = comm.allreduce([p.seconds], .max)[0]
    if comm.isRoot {
        try mergePairParts(parts, into: r.output)
        for part in parts { try? FileManager.default.removeItem(atPath: part) }
    }
    comm.barrier()  // the merged file exists for every rank that returns
    return PairsResult(path: r.output, rows: r.count, generated: Int(sums[0]), resumedFrom: Int(sums[1]),
                       meanNFE: sums[3] > 0 ? sums[2] / sums[3] : nil, seconds: seconds)
}

/// True when `r.output` holds all `r.count` pairs of this very job (same attributes).
private func isComplete(_ r: PairsRequest) throws -> Bool {
    guard FileManager.default.fileExists(atPath: r.output) else { return false }
    let reader = try TripletReader(path: r.output), want = try pairsAttributes(r)
    defer { reader.close() }
    return reader.count == r.count && reader.writerAttributes == want
}
