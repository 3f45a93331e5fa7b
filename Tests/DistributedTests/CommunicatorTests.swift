import XCTest
import Distributed

/// The parts of `Communicator` that need no mpirun (MPITests runs the tools under mpirun).
final class CommunicatorTests: XCTestCase {
    func testMPIIsUsedOnlyWhenALauncherSaysSo() {
        XCTAssertFalse(Communicator.launchedByMPI([:]))
        XCTAssertFalse(Communicator.launchedByMPI(["PATH": "/usr/bin", "OMPI_MCA_btl": "self"]))
        XCTAssertTrue(Communicator.launchedByMPI(["OMPI_COMM_WORLD_SIZE": "2"]))
        XCTAssertTrue(Communicator.launchedByMPI(["PMIX_RANK": "0"]))
    }

    func testSlicesTileTheBatchInRankOrderWithinOneRow() {
        for (count, ranks) in [(31, 2), (128, 8), (7, 7), (10, 3), (1000, 6)] {
            let c = Communicator.single
            var end = 0, sizes: [Int] = []
            for r in 0..<ranks {
                let s = Communicator.slice(of: count, rank: r, ranks: ranks)
                XCTAssertEqual(s.lowerBound, end, "\(count)/\(ranks) rank \(r)")
                end = s.upperBound
                sizes.append(s.count)
            }
            XCTAssertEqual(end, count)
            XCTAssertLessThanOrEqual(sizes.max()! - sizes.min()!, 1, "\(sizes)")
            XCTAssertEqual(c.slice(of: count), 0..<count)
        }
    }

    func testASingleProcessCollectivesLeaveDataAsIs() {
        let c = Communicator.single
        XCTAssertEqual(c.rank, 0)
        XCTAssertEqual(c.size, 1)
        XCTAssertTrue(c.isRoot)
        XCTAssertFalse(c.isDistributed)
        var v: [Float] = [1.5, -2, 0]
        v.withUnsafeMutableBufferPointer { c.allreduceSum($0.baseAddress!, count: $0.count) }
        XCTAssertEqual(v, [1.5, -2, 0])
        XCTAssertEqual(c.allreduce([3, 4], .sum), [3, 4])
        var out = [Float](repeating: 9, count: 3)
        v.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { c.allgather(src.baseAddress!, counts: [3], into: $0.baseAddress!) }
        }
        XCTAssertEqual(out, v)
        c.barrier()
    }
}
