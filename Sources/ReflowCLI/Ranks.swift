import Foundation
import Distributed
import Models
import Reporting

// How the tools behave under `mpirun -np K` (Communicator.world): rank 0 speaks and writes,
// the other ranks work quietly; an error on any rank ends the whole job.

/// Under mpirun with more than one rank: ranks other than 0 print only warnings and errors,
/// each line prefixed with the rank (rank 0 prints progress and results for the job).
func setUpRanks() {
    let w = Communicator.world
    guard w.isDistributed, !w.isRoot else { return }
    Log.level = max(Log.level, .warning)
    let prefix = "rank \(w.rank)/\(w.size): "
    Log.sink = { text in FileHandle.standardError.write(Data((prefix + text).utf8)) }
}

/// For tools (or modes) that do not split their work over ranks: K identical processes would
/// only write the same files K times.
public func requireOneRank(_ what: String) throws {
    let w = Communicator.world
    guard w.isDistributed else { return }
    throw ModelError("\(what) does not split its work over MPI ranks; run it without mpirun (mpirun -np \(w.size) works with reflow-train, reflow-distill, reflow-gen-pairs and reflow-eval)")
}

/// Prints a result line on stdout once per job (rank 0).
public func printResult(_ line: String) {
    if Communicator.world.isRoot { print(line) }
}
