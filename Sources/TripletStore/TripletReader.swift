import CHDF5
import HDF5
import Foundation
import Formats
import TensorCore

/// Reads a triplet file row range by row range (never the whole file unless asked), trusting
/// only the committed rows. Opening validates the format attributes, their checksum and the
/// dataset shapes; every read verifies each row's CRC32 and value bounds (see `TripletFormat`).
/// A non-HDF5, foreign, old-format or damaged file gives a `DataError` naming the file, and for
/// bad rows the dataset and row.
public final class TripletReader {
    public let path: String
    /// Committed rows.
    public let count: Int
    /// [C, H, W].
    public let itemShape: [Int]
    /// Every string root attribute (format, format_version, time_convention and the writer's).
    public let attributes: [String: String]
    /// The writer's attributes only (without the fixed format ones).
    public var writerAttributes: [String: String] { attributes.filter { TripletFormat.fixedAttributes[$0.key] == nil } }

    /// The fixed size of a `/text` entry in bytes (the longest caption a writer may add).
    public let textBytes: Int

    private var file: hid_t = -1
    private var data: TripletDatasets
    private let itemSize: Int

    public init(path: String) throws {
        self.path = path
        var f: hid_t = -1
        let opened: (TripletLayout, TripletDatasets) = try H5.run {
            f = try H5.openFile(path, write: false)
            do { return try TripletLayout.inspect(f, path) } catch { H5Fclose(f); throw error }
        }
        file = f
        data = opened.1
        count = opened.0.committed
        itemShape = opened.0.itemShape
        attributes = opened.0.attributes
        itemSize = opened.1.itemSize
        textBytes = opened.1.textBytes
    }

    private func checkRange(_ r: Range<Int>) throws {
        guard r.lowerBound >= 0, r.upperBound <= count else {
            throw DataError("\(path): rows \(r.lowerBound)..<\(r.upperBound) are outside the \(count) committed rows")
        }
        guard file >= 0 else { throw DataError("\(path): reader is closed") }
    }

    public func readTexts(_ rows: Range<Int>) throws -> [String] {
        try checkRange(rows)
        return try H5.run { try data.readTexts(rows) }
    }

    /// Noise rows into `out` (rows.count * C*H*W floats).
    public func readNoise(_ rows: Range<Int>, into out: UnsafeMutablePointer<Float>) throws {
        try checkRange(rows)
        if rows.isEmpty { return }
        try H5.run { try data.readFloats(.noise, rows, into: out) }
    }

    /// Image rows into `out` (rows.count * C*H*W floats).
    public func readImages(_ rows: Range<Int>, into out: UnsafeMutablePointer<Float>) throws {
        try checkRange(rows)
        if rows.isEmpty { return }
        try H5.run { try data.readFloats(.image, rows, into: out) }
    }

    /// Rows [a, b) of all three datasets.
    public func read(_ rows: Range<Int>) throws -> TripletBatch {
        let x0 = Storage(uninitializedCount: rows.count * itemSize)
        let x1 = Storage(uninitializedCount: rows.count * itemSize)
        let texts = try readTexts(rows)
        try readNoise(rows, into: x0.ptr)
        try readImages(rows, into: x1.ptr)
        return TripletBatch(texts: texts, noise: x0, images: x1, shape: [rows.count] + itemShape)
    }

    /// Arbitrary rows (e.g. a shuffled minibatch), in the order given. Each maximal run of
    /// consecutive rows is one read, but a chunk holds up to 64 rows and is decompressed whole:
    /// for many random minibatches, read large blocks (or the whole file) once instead.
    public func read(rows: [Int]) throws -> TripletBatch {
        if let bad = rows.first(where: { $0 < 0 || $0 >= count }) {
            throw DataError("\(path): row \(bad) is outside the \(count) committed rows")
        }
        let order = Array(Set(rows)).sorted()
        var slot = [Int: Int]()
        for (k, r) in order.enumerated() { slot[r] = k }
        let x0 = Storage(uninitializedCount: order.count * itemSize)
        let x1 = Storage(uninitializedCount: order.count * itemSize)
        var texts = [String]()
        texts.reserveCapacity(order.count)
        var k = 0
        while k < order.count {
            var e = k + 1
            while e < order.count && order[e] == order[e - 1] + 1 { e += 1 }
            let run = order[k]..<(order[e - 1] + 1)
            texts += try readTexts(run)
            try readNoise(run, into: x0.ptr + k * itemSize)
            try readImages(run, into: x1.ptr + k * itemSize)
            k = e
        }
        if order == rows { return TripletBatch(texts: texts, noise: x0, images: x1, shape: [rows.count] + itemShape) }
        let y0 = Storage(uninitializedCount: rows.count * itemSize)
        let y1 = Storage(uninitializedCount: rows.count * itemSize)
        for (i, r) in rows.enumerated() {
            let s = slot[r]! * itemSize
            (y0.ptr + i * itemSize).update(from: x0.ptr + s, count: itemSize)
            (y1.ptr + i * itemSize).update(from: x1.ptr + s, count: itemSize)
        }
        return TripletBatch(texts: rows.map { texts[slot[$0]!] }, noise: y0, images: y1, shape: [rows.count] + itemShape)
    }

    public func close() {
        H5.run {
            data.close()
            if file >= 0 { H5Fclose(file) }
            data.text = -1; data.noise = -1; data.image = -1; data.checksum = -1; file = -1
        }
    }

    deinit { close() }
}

// MARK: - Merge

public enum TripletStore {
    /// Copies the committed rows of `parts`, in order, into a new triplet file `into` (replacing
    /// it). All parts must hold the same item shape; the output takes `attributes` when given,
    /// else the parts' writer attributes, which must then be identical. Copies in blocks of a few
    /// MB, so memory does not grow with N; the output appears under its name only when complete.
    /// Returns the number of rows written.
    @discardableResult
    public static func merge(parts: [String], into: String, attributes: [String: String]? = nil,
                             rowsPerChunk: Int? = nil, compression: Int = 1) throws -> Int {
        guard !parts.isEmpty else { throw DataError("\(into): merge needs at least one part") }
        var readers = [TripletReader]()
        for p in parts { readers.append(try TripletReader(path: p)) }
        defer { for r in readers { r.close() } }
        let first = readers[0]
        for r in readers.dropFirst() {
            guard r.itemShape == first.itemShape else {
                throw DataError("\(r.path): items of shape \(r.itemShape) cannot merge with \(first.path)'s \(first.itemShape)")
            }
            if attributes == nil && r.writerAttributes != first.writerAttributes {
                let a = first.writerAttributes, b = r.writerAttributes
                let keys = Set(a.keys).union(b.keys).sorted().filter { a[$0] != b[$0] }
                throw DataError("\(r.path): attributes differ from \(first.path)'s (\(keys.joined(separator: ", "))); "
                    + "pass the merged file's attributes explicitly")
            }
        }
        let tmp = into + ".merging-\(getpid())"
        let writer = try TripletWriter(path: tmp, itemShape: first.itemShape,
                                       attributes: attributes ?? first.writerAttributes, mode: .overwrite,
                                       rowsPerChunk: rowsPerChunk, compression: compression,
                                       textBytes: readers.map(\.textBytes).max())
        do {
            for r in readers { try writer.append(allRowsOf: r) }
            try writer.close()
        } catch {
            try? writer.close()
            unlink(tmp)
            throw error
        }
        guard rename(tmp, into) == 0 else {
            let why = String(cString: strerror(errno))
            unlink(tmp)
            throw DataError("\(into): cannot move the merged file into place: \(why)")
        }
        return writer.committedCount
    }
}
