import XCTest
import TensorCore
#if canImport(Glibc)
import Glibc
#endif

/// Naive row-major reference C = op(A) op(B), in Double.
func referenceProduct(_ ta: Bool, _ tb: Bool, _ m: Int, _ n: Int, _ k: Int, _ a: [Float], _ b: [Float]) -> [Float] {
    var c = [Float](repeating: 0, count: m * n)
    for i in 0..<m {
        for j in 0..<n {
            var s = 0.0
            for p in 0..<k {
                let av = ta ? a[p * m + i] : a[i * k + p]
                let bv = tb ? b[j * k + p] : b[p * n + j]
                s += Double(av) * Double(bv)
            }
            c[i * n + j] = Float(s)
        }
    }
    return c
}

/// The thread pool, the split sgemm and broadcasting plans: results must not depend on the
/// number of threads or on how the work is cut.
final class ParallelTests: XCTestCase {
    override func tearDown() { Runtime.threads = 2 }

    /// Products above the split threshold, split by columns (n >= m) and by rows (m > n), with
    /// every transpose combination, equal the Double reference to float rounding, as the serial
    /// product does. (Not bit for bit: OpenBLAS may pick other kernels for a narrower block.)
    func testSplitSgemmMatchesSerialAndReference() {
        var rng = SystemRandomNumberGenerator()
        for (m, n, k) in [(96, 200, 40), (300, 70, 33), (64, 64, 128)] {
            XCTAssertGreaterThanOrEqual(m * n * k, BLAS.parallelWork, "shape \(m)x\(n)x\(k) must take the split path")
            let a = (0..<(m * k)).map { _ in Float.random(in: -1...1, using: &rng) }
            let b = (0..<(k * n)).map { _ in Float.random(in: -1...1, using: &rng) }
            for ta in [false, true] {
                for tb in [false, true] {
                    func run(threads: Int) -> [Float] {
                        Runtime.threads = threads
                        var c = [Float](repeating: 7, count: m * n)
                        a.withUnsafeBufferPointer { ap in
                            b.withUnsafeBufferPointer { bp in
                                c.withUnsafeMutableBufferPointer { cp in
                                    BLAS.sgemm(transA: ta, transB: tb, m: m, n: n, k: k, a: ap.baseAddress!, lda: ta ? m : k,
                                               b: bp.baseAddress!, ldb: tb ? k : n, c: cp.baseAddress!, ldc: n)
                                }
                            }
                        }
                        return c
                    }
                    let ref = referenceProduct(ta, tb, m, n, k, a, b)
                    for threads in [1, 2, 3] {
                        let worst = zip(run(threads: threads), ref).map { abs($0 - $1) }.max()!
                        // |terms| <= 1: k products, each rounded once, plus the sums' rounding.
                        XCTAssertLessThan(worst, 2e-6 * Float(k), "\(m)x\(n)x\(k) transA \(ta) transB \(tb), \(threads) threads: off the reference by \(worst)")
                    }
                }
            }
        }
    }

    /// Many hand-offs in a row, some right after the last (workers still spinning), some after a
    /// pause longer than the spin (workers asleep): every part runs exactly once each time.
    func testPoolRunsEveryPartOnceAcrossSpinAndSleep() {
        Runtime.threads = 2
        let counts = UnsafeMutablePointer<Int>.allocate(capacity: 4)
        defer { counts.deallocate() }
        for round in 0..<2_000 {
            counts.initialize(repeating: 0, count: 4)
            let parts = 2 + round % 3
            ThreadPool.perform(parts) { p in counts[p] += 1 }
            for p in 0..<parts { XCTAssertEqual(counts[p], 1, "round \(round): part \(p) ran \(counts[p]) times") }
            if round % 100 == 0 { usleep(UInt32(ThreadPool.spinNanos / 1000) * 3) }
        }
    }

    /// A part no worker has started when the caller finishes part 0 is run by the caller: with
    /// the worker asleep (after a pause longer than its spin) its wake-up takes microseconds, so
    /// the caller gets there first. Every part still runs once, on one thread.
    func testCallerRunsPartsNoWorkerHasStarted() {
        Runtime.threads = 2
        let ranOn = UnsafeMutablePointer<pthread_t>.allocate(capacity: 2)
        let runs = UnsafeMutablePointer<Int>.allocate(capacity: 2)
        defer { ranOn.deallocate(); runs.deallocate() }
        var byCaller = 0
        for round in 0..<50 {
            usleep(UInt32(ThreadPool.spinNanos / 1000) * 3)
            runs.initialize(repeating: 0, count: 2)
            ThreadPool.perform(2) { p in ranOn[p] = pthread_self(); runs[p] += 1 }
            XCTAssertEqual([runs[0], runs[1]], [1, 1], "round \(round)")
            XCTAssertNotEqual(pthread_equal(ranOn[0], pthread_self()), 0, "part 0 runs on the caller")
            if pthread_equal(ranOn[1], pthread_self()) != 0 { byCaller += 1 }
        }
        XCTAssertGreaterThan(byCaller, 0, "the caller never ran a part its sleeping worker had not started")
    }

    /// Coalesced broadcasting gives the plain index arithmetic's offsets.
    func testBroadcastPlanOffsets() {
        for (a, b, out) in [([2, 3, 4, 5], [2, 3, 1, 1], [2, 3, 4, 5]), ([4, 1, 5], [3, 1], [4, 3, 5]),
                            ([1, 3, 1], [2, 1, 4], [2, 3, 4]), ([6], [1], [6]), ([], [2, 2], [2, 2]), ([2, 1, 3], [2, 1, 3], [2, 1, 3])] {
            let plan = BroadcastPlan(a, b, out: out)
            XCTAssertEqual(plan.rows * plan.rowLength, out.reduce(1, *), "\(a) x \(b)")
            func offset(_ shape: [Int], _ idx: [Int]) -> Int {
                let pad = [Int](repeating: 1, count: out.count - shape.count) + shape
                var o = 0
                for d in 0..<out.count { o = o * pad[d] + (pad[d] == 1 ? 0 : idx[d]) }
                return o
            }
            for r in 0..<plan.rows {
                for j in 0..<plan.rowLength {
                    var flat = r * plan.rowLength + j
                    var idx = [Int](repeating: 0, count: out.count)
                    for d in stride(from: out.count - 1, through: 0, by: -1) { idx[d] = flat % out[d]; flat /= out[d] }
                    let (oa, ob) = plan.offsets(row: r)
                    XCTAssertEqual(oa + j * plan.aInner, offset(a, idx), "\(a) x \(b): a offset at row \(r), column \(j)")
                    XCTAssertEqual(ob + j * plan.bInner, offset(b, idx), "\(a) x \(b): b offset at row \(r), column \(j)")
                }
            }
        }
    }
}

/// Winograd's thin products without packing: every block shape and remainder, both layouts of A.
final class SmallGEMMTests: XCTestCase {
    func testMatchesReferenceForRemaindersAndTransposedA() {
        var rng = SystemRandomNumberGenerator()
        for (m, n, k) in [(32, 252, 32), (7, 37, 5), (4, 16, 1), (13, 3, 64), (1, 1, 1)] {
            let a = (0..<(m * k)).map { _ in Float.random(in: -1...1, using: &rng) }
            let b = (0..<(k * n)).map { _ in Float.random(in: -1...1, using: &rng) }
            let at = (0..<(k * m)).map { a[($0 % m) * k + $0 / m] }  // A^T stored [k, m]
            let ref = referenceProduct(false, false, m, n, k, a, b)
            let ld = (n + 15) / 16 * 16 + 16  // room for a padded last strip, as Winograd's buffers have
            for padded in [false, true] {
                for transposed in [false, true] {
                    var bb = [Float](repeating: .nan, count: k * ld)
                    for p in 0..<k { for j in 0..<n { bb[p * ld + j] = b[p * n + j] } }
                    if padded { for p in 0..<k { for j in n..<ld { bb[p * ld + j] = 0 } } }
                    var c = [Float](repeating: .nan, count: m * ld)
                    let src = transposed ? at : a
                    src.withUnsafeBufferPointer { ap in
                        bb.withUnsafeBufferPointer { bp in
                            c.withUnsafeMutableBufferPointer { cp in
                                SmallGEMM.multiply(m: m, n: n, k: k, a: ap.baseAddress!, aRow: transposed ? 1 : k, aCol: transposed ? m : 1,
                                                   b: bp.baseAddress!, ldb: ld, c: cp.baseAddress!, ldc: ld, padded: padded)
                            }
                        }
                    }
                    var worst: Float = 0
                    for i in 0..<m { for j in 0..<n { worst = max(worst, abs(c[i * ld + j] - ref[i * n + j])) } }
                    XCTAssertLessThan(worst, 2e-6 * Float(k), "\(m)x\(n)x\(k) padded \(padded) transposed \(transposed): off by \(worst)")
                }
            }
        }
    }
}
