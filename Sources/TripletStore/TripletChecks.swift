import CHDF5
import HDF5
import Foundation
import Formats

/// The checks format 2 adds (see `TripletFormat`): per-row CRC32s, value bounds, the attribute
/// checksum, and reads that verify them.
enum TripletCheck {
    /// The three columns of `/checksum`, in order.
    enum Column: Int, CaseIterable {
        case text = 0, noise = 1, image = 2
        var dataset: String { "/" + [TripletFormat.textName, TripletFormat.noiseName, TripletFormat.imageName][rawValue] }
    }

    /// CRC32 (zlib's, = Python's `zlib.crc32`) of the row index as int64 little-endian followed by
    /// the row's stored bytes. The index makes a row moved to another position fail its check.
    static func crc(row: Int, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        let index = Int64(row).littleEndian
        let c = withUnsafeBytes(of: index) { CRC32.update(0, $0) }
        return CRC32.update(c, bytes)
    }

    /// CRC32 of every string root attribute, sorted by name, as "name NUL value NUL" bytes.
    static func attributesCRC(_ attributes: [String: String]) -> Int64 {
        var bytes = [UInt8]()
        for (k, v) in attributes.sorted(by: { $0.key < $1.key }) { bytes += Array(k.utf8) + [0] + Array(v.utf8) + [0] }
        return Int64(bytes.withUnsafeBytes { CRC32.update(0, $0) })
    }

    /// Throws naming the file, dataset, row and element when a value is not finite or outside the
    /// column's bound. `first` is the file row of the first item.
    static func checkValues(_ p: UnsafePointer<Float>, rows: Int, itemSize: Int, first: Int, _ column: Column,
                            _ path: String, writing: Bool = false) throws {
        let bound = column == .noise ? TripletFormat.noiseBound : TripletFormat.imageBound
        let n = rows * itemSize
        // One branch-free pass; the slow search for the culprit runs only on failure.
        var bad = 0
        for k in 0..<n { bad &+= abs(p[k]) <= bound ? 0 : 1 }  // NaN compares false: counted
        guard bad > 0 else { return }
        let k = (0..<n).first { !(abs(p[$0]) <= bound) }!
        let what = column == .noise ? "noise (x0 ~ N(0, I))" : "images (which live in [-1, 1])"
        let why = writing ? "refusing to write it: the generator produced invalid values"
            : "the file was written by another tool with bad values, or is damaged"
        throw DataError("\(path): '\(column.dataset)' row \(first + k / itemSize) element \(k % itemSize) is \(p[k]), "
            + "\(p[k].isFinite ? "outside [-\(bound), \(bound)] allowed for \(what)" : "not finite"); \(why)")
    }
}

/// The open datasets of a format-2 triplet file and reads that verify what they return: each
/// row's CRC32 against `/checksum`, then the value bounds. Use inside `H5.run`.
struct TripletDatasets {
    let path: String
    var text: hid_t, noise: hid_t, image: hid_t, checksum: hid_t
    let itemShape: [Int]
    let itemSize: Int
    /// The fixed size of a `/text` entry in bytes.
    let textBytes: Int

    var all: [hid_t] { [text, noise, image, checksum] }

    func close() { for d in all where d >= 0 { H5Dclose(d) } }

    /// Stored checksums of `rows`, 3 per row (text, noise, image).
    func readChecksums(_ rows: Range<Int>) throws -> [UInt32] {
        var out = [UInt32](repeating: 0, count: rows.count * 3)
        try out.withUnsafeMutableBytes {
            try H5.readRows(checksum, start: rows.lowerBound, rows: rows.count, itemShape: [3],
                            memType: rf_H5T_NATIVE_UINT32(), $0.baseAddress!, path, "/\(TripletFormat.checksumName)")
        }
        return out
    }

    private func verify(_ stored: [UInt32], _ column: TripletCheck.Column, _ rows: Range<Int>,
                        _ bytes: UnsafeRawBufferPointer, rowBytes: Int) throws {
        for (k, r) in rows.enumerated() {
            let c = TripletCheck.crc(row: r, UnsafeRawBufferPointer(rebasing: bytes[(k * rowBytes)..<((k + 1) * rowBytes)]))
            if c != stored[k * 3 + column.rawValue] {
                throw DataError("\(path): '\(column.dataset)' row \(r) fails its checksum (stored "
                    + "\(String(stored[k * 3 + column.rawValue], radix: 16)), computed \(String(c, radix: 16))): the file "
                    + "is damaged; regenerate it (re-run reflow-gen-pairs with --overwrite)")
            }
        }
    }

    /// The raw fixed-size bytes of `/text` rows (textBytes each).
    func readTextBytes(_ rows: Range<Int>) throws -> [UInt8] {
        var buf = [UInt8](repeating: 0, count: rows.count * textBytes)
        if rows.isEmpty { return buf }
        // The file's own type as the memory type: the bytes as stored (what the CRC covers), and
        // no character-set conversion, which HDF5 refuses between ASCII and UTF-8.
        let type = H5Dget_type(text)
        defer { H5Tclose(type) }
        try buf.withUnsafeMutableBytes {
            try H5.readRows(text, start: rows.lowerBound, rows: rows.count, itemShape: [], memType: type,
                            $0.baseAddress!, path, "/\(TripletFormat.textName)")
        }
        return buf
    }

    func readTexts(_ rows: Range<Int>) throws -> [String] {
        if rows.isEmpty { return [] }
        let buf = try readTextBytes(rows)
        try buf.withUnsafeBytes { try verify(try readChecksums(rows), .text, rows, $0, rowBytes: textBytes) }
        return try rows.enumerated().map { k, r in
            try H5.decodeFixed(buf[(k * textBytes)..<((k + 1) * textBytes)], path, "'/text' row \(r)")
        }
    }

    /// Noise or image rows into `out` (rows.count * itemSize floats), verified.
    func readFloats(_ column: TripletCheck.Column, _ rows: Range<Int>, into out: UnsafeMutablePointer<Float>) throws {
        if rows.isEmpty { return }
        let dset = column == .noise ? noise : image
        try H5.readRows(dset, start: rows.lowerBound, rows: rows.count, itemShape: itemShape,
                        memType: rf_H5T_NATIVE_FLOAT(), out, path, column.dataset)
        let bytes = UnsafeRawBufferPointer(start: out, count: rows.count * itemSize * 4)
        try verify(try readChecksums(rows), column, rows, bytes, rowBytes: itemSize * 4)
        try TripletCheck.checkValues(out, rows: rows.count, itemSize: itemSize, first: rows.lowerBound, column, path)
    }

    /// Reads and checks every row in `rows` in blocks of a few MB (a resuming writer's check).
    func verifyAll(_ rows: Range<Int>) throws {
        let block = max(1, (4 << 20) / (itemSize * 4))
        var buf = [Float](repeating: 0, count: min(block, max(rows.count, 1)) * itemSize)
        var a = rows.lowerBound
        while a < rows.upperBound {
            let r = a..<min(rows.upperBound, a + block)
            _ = try readTexts(r)
            try buf.withUnsafeMutableBufferPointer { b in
                try readFloats(.noise, r, into: b.baseAddress!)
                try readFloats(.image, r, into: b.baseAddress!)
            }
            a = r.upperBound
        }
    }
}

/// CRC32 with zlib's (IEEE 802.3, reflected) polynomial, as Python's `zlib.crc32`. Written here
/// because TripletStore does not link zlib; slicing by 8 (eight tables, eight bytes a step)
/// runs at about a byte a cycle, far below the cost of reading and inflating the rows.
enum CRC32 {
    /// Eight tables of 256 entries, one after the other: table k advances a byte by k more bytes.
    static let table: [UInt32] = {
        var t = [UInt32](repeating: 0, count: 8 * 256)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = (c >> 1) ^ (c & 1 == 1 ? 0xEDB8_8320 : 0) }
            t[i] = c
        }
        for k in 1..<8 { for i in 0..<256 { t[k * 256 + i] = (t[(k - 1) * 256 + i] >> 8) ^ t[Int(t[(k - 1) * 256 + i] & 0xFF)] } }
        return t
    }()

    /// The CRC32 of (the bytes `crc` covers) followed by `bytes`; start with 0.
    static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
        var c = ~crc
        let n = bytes.count
        guard n > 0, let p = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self) else { return crc }
        return table.withUnsafeBufferPointer { t in
            var i = 0
            while i + 8 <= n {
                let lo = c ^ (UInt32(p[i]) | UInt32(p[i + 1]) << 8 | UInt32(p[i + 2]) << 16 | UInt32(p[i + 3]) << 24)
                let hi = UInt32(p[i + 4]) | UInt32(p[i + 5]) << 8 | UInt32(p[i + 6]) << 16 | UInt32(p[i + 7]) << 24
                c = t[7 * 256 + Int(lo & 0xFF)] ^ t[6 * 256 + Int((lo >> 8) & 0xFF)]
                    ^ t[5 * 256 + Int((lo >> 16) & 0xFF)] ^ t[4 * 256 + Int(lo >> 24)]
                    ^ t[3 * 256 + Int(hi & 0xFF)] ^ t[2 * 256 + Int((hi >> 8) & 0xFF)]
                    ^ t[1 * 256 + Int((hi >> 16) & 0xFF)] ^ t[Int(hi >> 24)]
                i += 8
            }
            while i < n {
                c = (c >> 8) ^ t[Int((c ^ UInt32(p[i])) & 0xFF)]
                i += 1
            }
            return ~c
        }
    }
}
