import Foundation
import Formats

// Sharded pair jobs: a job of N pairs split into parts of whole batches (--shard i/n), each a
// triplet file of its own, and the merge that joins complete parts into the file one process
// would have written.

/// A contiguous part of a pair job: shard `index` of `count` (0-based).
public struct Shard: Equatable, CustomStringConvertible {
    public var index: Int, count: Int
    public init(index: Int, count: Int) { self.index = index; self.count = count }

    /// Parses "i/n" (0 <= i < n).
    public init(parsing s: String) throws {
        let parts = s.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]), n >= 1, i >= 0, i < n else {
            throw DataError("--shard '\(s)': expected i/n with 0 <= i < n, e.g. 0/4")
        }
        index = i; count = n
    }

    public var description: String { "\(index)/\(count)" }

    /// Pair indices of this shard: whole batches, batches split as evenly as possible.
    public func rows(total: Int, batchSize: Int) -> Range<Int> {
        let batches = (total + batchSize - 1) / batchSize
        let b0 = index * batches / count, b1 = (index + 1) * batches / count
        return min(total, b0 * batchSize)..<min(total, b1 * batchSize)
    }
}

/// Attribute names beyond `TripletFormat.Key` that our pair files carry.
public enum PairsKey {
    public static let batchSize = "batch_size"
    public static let prompts = "prompts"
    public static let noise = "noise"
    public static let teacherStage = "teacher_stage"
    public static let configHash = "config_hash"
    /// Pairs of a diffusion teacher: the sampler's full label, e.g. "dpm-solver++(2M, 25, linspace, epsilon)".
    public static let sampler = "sampler"
    /// Shard parts only (dropped by `mergePairParts`).
    public static let shard = "shard", shardRows = "shard_rows", shardTotal = "shard_total"
}

/// Joins shard parts (any order) into one file equal to a single run's: checks that the parts
/// come from the same job and tile 0..<total without gaps, each complete. Returns the row count.
@discardableResult
public func mergePairParts(_ parts: [String], into output: String) throws -> Int {
    guard !parts.isEmpty else { throw DataError("merge: give at least one part") }
    struct Part { var path: String; var rows: Range<Int>; var total: Int; var shards: Int; var attrs: [String: String] }
    var infos: [Part] = []
    for p in parts {
        let r = try TripletReader(path: p)
        defer { r.close() }
        var a = r.writerAttributes
        guard let shard = a[PairsKey.shard], let rowsText = a[PairsKey.shardRows],
              let totalText = a[PairsKey.shardTotal], let total = Int(totalText) else {
            throw DataError("merge: \(p) is not a shard part (no '\(PairsKey.shard)'/'\(PairsKey.shardRows)' attributes); it was not written with --shard")
        }
        let bounds = rowsText.split(separator: "-").compactMap { Int($0) }
        guard bounds.count == 2, bounds[0] <= bounds[1], let n = Int(shard.split(separator: "/").last ?? "") else {
            throw DataError("merge: \(p): malformed shard attributes (shard '\(shard)', shard_rows '\(rowsText)')")
        }
        let rows = bounds[0]..<bounds[1]
        guard r.count == rows.count else {
            throw DataError("merge: \(p) (shard \(shard)) holds \(r.count) of its \(rows.count) pairs: finish it by re-running its command, then merge")
        }
        for k in [PairsKey.shard, PairsKey.shardRows, PairsKey.shardTotal] { a[k] = nil }
        infos.append(Part(path: p, rows: rows, total: total, shards: n, attrs: a))
    }
    infos.sort { $0.rows.lowerBound < $1.rows.lowerBound }
    let first = infos[0]
    var end = 0
    for part in infos {
        if part.attrs != first.attrs {
            let keys = Set(part.attrs.keys).union(first.attrs.keys).sorted().filter { part.attrs[$0] != first.attrs[$0] }
            throw DataError("merge: \(part.path) and \(first.path) come from different jobs (attributes differ: \(keys.joined(separator: ", ")))")
        }
        guard part.total == first.total, part.shards == first.shards else {
            throw DataError("merge: \(part.path) is from a job of \(part.total) pairs in \(part.shards) shards, \(first.path) from \(first.total) in \(first.shards)")
        }
        guard part.rows.lowerBound == end else {
            throw DataError(part.rows.lowerBound > end
                ? "merge: pairs \(end)..<\(part.rows.lowerBound) are missing (no part covers them)"
                : "merge: \(part.path) overlaps another part at pair \(part.rows.lowerBound)")
        }
        end = part.rows.upperBound
    }
    guard end == first.total else {
        throw DataError("merge: pairs \(end)..<\(first.total) are missing (no part covers them)")
    }
    return try TripletStore.merge(parts: infos.map(\.path), into: output, attributes: first.attrs)
}

/// What a triplet file holds, all in memory (small files: tests, inspection).
public struct PairsFile {
    public let count: Int
    public let itemShape: [Int]
    public let attributes: [String: String]
    public let texts: [String]
    public let noise: [Float]
    public let images: [Float]

    /// Reads all committed rows (small files only: tests, inspection).
    public init(path: String) throws {
        let r = try TripletReader(path: path)
        defer { r.close() }
        count = r.count; itemShape = r.itemShape; attributes = r.writerAttributes
        let b = try r.read(0..<r.count)
        texts = b.texts
        noise = Array(UnsafeBufferPointer(start: b.noise.ptr, count: b.noise.count))
        images = Array(UnsafeBufferPointer(start: b.images.ptr, count: b.images.count))
    }
}
