import Foundation
import Autograd
import Datasets
import Formats
import TripletStore
import Generation
import Reporting
import Models
import TensorCore

/// Reflow and distillation data: (x0 = noise, x1 = image, caption) rows of one or more triplet
/// files, seen as one list of rows (files in order). Deterministic in `step`, like every
/// `TrainingSource`: a resumed run sees the batches an uninterrupted one would.
///
/// Small inputs (under `memoryLimit` bytes of floats) are loaded once and drawn from a fresh
/// permutation per epoch. Large ones are read in blocks of `blockRows` contiguous rows: random
/// rows cost a whole compressed chunk each (~0.7 s per 256 rows), a block costs one sequential
/// read. An epoch visits the blocks in a permuted order and each block's rows in a permuted
/// order; both permutations come from (seed, epoch, block), so the row sequence depends on
/// nothing else. Two blocks are cached (a batch can straddle a block boundary).
public final class TripletSource: TrainingSource {
    public let paths: [String]
    public let itemShape: [Int]
    /// Rows over all files.
    public let count: Int
    /// Writer attributes of each file.
    public let attributes: [[String: String]]
    /// True when everything was loaded into memory.
    public let inMemory: Bool
    let seed: UInt64
    let itemSize: Int
    let readers: [TripletReader]
    /// Row ranges of the blocks (global row numbers) and the file each lies in.
    let blocks: [(file: Int, rows: Range<Int>)]
    let fileStarts: [Int]

    // In-memory mode.
    private var texts: [String] = []
    private var noise: Storage? = nil, images: Storage? = nil
    private var sampler: EpochSampler

    // Block mode caches.
    private var epochOrder: (epoch: Int, order: [Int], starts: [Int])? = nil
    private var cached: [(key: UInt64, texts: [String], noise: Storage, images: Storage, perm: [Int])] = []

    public init(paths: [String], seed: UInt64, blockRows: Int = 16384, memoryLimit: Int = 1 << 30) throws {
        guard !paths.isEmpty else { throw ModelError("reflow: no triplet files given (--input)") }
        guard blockRows >= 1 else { throw ModelError("TripletSource: blockRows must be at least 1") }
        var rs: [TripletReader] = []
        for p in paths {
            guard FileManager.default.fileExists(atPath: p) else {
                throw ModelError("triplet file \(p) not found (make it with reflow-gen-pairs)")
            }
            rs.append(try TripletReader(path: p))
        }
        let shape = rs[0].itemShape
        for r in rs.dropFirst() where r.itemShape != shape {
            throw ModelError("triplet files disagree on the item shape: \(rs[0].path) holds \(shape), \(r.path) holds \(r.itemShape)")
        }
        for r in rs where r.count == 0 {
            throw ModelError("triplet file \(r.path) holds no committed pairs (an interrupted reflow-gen-pairs? re-run it to finish)")
        }
        self.paths = paths
        readers = rs
        itemShape = shape
        itemSize = shape.reduce(1, *)
        attributes = rs.map(\.writerAttributes)
        var starts: [Int] = [], total = 0
        for r in rs { starts.append(total); total += r.count }
        fileStarts = starts
        count = total
        self.seed = seed
        sampler = EpochSampler(count: total, seed: seed &+ 0x7219_1E75)
        var bl: [(file: Int, rows: Range<Int>)] = []
        for (f, r) in rs.enumerated() {
            var a = 0
            while a < r.count {
                let b = min(r.count, a + blockRows)
                bl.append((f, (starts[f] + a)..<(starts[f] + b)))
                a = b
            }
        }
        blocks = bl
        inMemory = 2 * total * itemSize * 4 < memoryLimit
        if inMemory {
            let x0 = Storage(uninitializedCount: total * itemSize), x1 = Storage(uninitializedCount: total * itemSize)
            for (f, r) in rs.enumerated() {
                let b = try r.read(0..<r.count)
                texts += b.texts
                (x0.ptr + starts[f] * itemSize).update(from: b.noise.ptr, count: r.count * itemSize)
                (x1.ptr + starts[f] * itemSize).update(from: b.images.ptr, count: r.count * itemSize)
            }
            noise = x0; images = x1
        }
    }

    public func batch(step: Int, size: Int, slice: Range<Int>) throws -> (x0: Tensor, x1: Tensor, captions: [String]) {
        let n = slice.count
        let x0 = Storage(uninitializedCount: n * itemSize), x1 = Storage(uninitializedCount: n * itemSize)
        var caps: [String] = []
        caps.reserveCapacity(n)
        if inMemory, let noise, let images {
            let idx = sampler.indices(step: step, size: size)[slice]
            for (j, i) in idx.enumerated() {
                (x0.ptr + j * itemSize).update(from: noise.ptr + i * itemSize, count: itemSize)
                (x1.ptr + j * itemSize).update(from: images.ptr + i * itemSize, count: itemSize)
                caps.append(texts[i])
            }
        } else {
            for (j, k) in slice.enumerated() {
                let p = step * size + k
                let (blk, row) = try blockRow(epoch: p / count, offset: p % count)
                (x0.ptr + j * itemSize).update(from: blk.noise.ptr + row * itemSize, count: itemSize)
                (x1.ptr + j * itemSize).update(from: blk.images.ptr + row * itemSize, count: itemSize)
                caps.append(blk.texts[row])
            }
        }
        let shape = [n] + itemShape
        return (Tensor(shape: shape, storage: x0), Tensor(shape: shape, storage: x1), caps)
    }

    /// The block holding position `offset` of epoch `epoch`, and the row within it.
    private func blockRow(epoch: Int, offset: Int) throws -> (block: (texts: [String], noise: Storage, images: Storage), row: Int) {
        if epochOrder?.epoch != epoch {
            var rng = RNG(seed: seed &+ 0xB10C_0DE5, counter: UInt64(epoch))
            let order = rng.permutation(blocks.count)
            var starts: [Int] = [0]
            for b in order { starts.append(starts.last! + blocks[b].rows.count) }
            epochOrder = (epoch, order, starts)
        }
        let (_, order, starts) = epochOrder!
        // Last k with starts[k] <= offset.
        var lo = 0, hi = order.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if starts[mid] <= offset { lo = mid } else { hi = mid - 1 }
        }
        let id = order[lo]
        let key = UInt64(epoch) << 32 | UInt64(id)
        if let c = cached.first(where: { $0.key == key }) {
            return ((c.texts, c.noise, c.images), c.perm[offset - starts[lo]])
        }
        let (file, rows) = blocks[id]
        let local = (rows.lowerBound - fileStarts[file])..<(rows.upperBound - fileStarts[file])
        let b = try readers[file].read(local)
        var rng = RNG(seed: seed &+ 0x5EED_B10C, counter: key)
        let perm = rng.permutation(rows.count)
        cached.append((key, b.texts, b.noise, b.images, perm))
        if cached.count > 2 { cached.removeFirst() }
        return ((b.texts, b.noise, b.images), perm[offset - starts[lo]])
    }
}
