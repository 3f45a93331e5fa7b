import CHDF5
import TripletStore
import Formats
import Foundation
import TensorCore
import XCTest
import TestSupport

/// HDF5 files built with the C API, without our writer.
enum HDF5Fixture {
    /// A plain HDF5 file with one dataset and no triplet attributes.
    static func foreignFile(_ path: String) {
        let f = H5Fcreate(path, rf_H5F_ACC_TRUNC(), rf_H5P_DEFAULT(), rf_H5P_DEFAULT())
        var dims: [hsize_t] = [4, 4]
        let s = H5Screate_simple(2, &dims, nil)
        let d = H5Dcreate2(f, "data", rf_H5T_NATIVE_FLOAT(), s, rf_H5P_DEFAULT(), rf_H5P_DEFAULT(), rf_H5P_DEFAULT())
        var v = [Float](repeating: 1, count: 16)
        H5Dwrite(d, rf_H5T_NATIVE_FLOAT(), rf_H5S_ALL(), rf_H5S_ALL(), rf_H5P_DEFAULT(), &v)
        H5Dclose(d); H5Sclose(s); H5Fclose(f)
    }

    /// Our attributes (as ASCII strings, as other tools write them) and dataset names, but /noise
    /// and /image disagree on the item shape. `legacy`: as format 1 did, variable-length strings.
    /// `compactNoise`: /noise in compact storage (inside the object header), which readers refuse.
    static func ourAttributesWrongShapes(_ path: String, legacy: Bool = false, compactNoise: Bool = false) {
        let f = H5Fcreate(path, rf_H5F_ACC_TRUNC(), rf_H5P_DEFAULT(), rf_H5P_DEFAULT())
        var fixed = TripletFormat.fixedAttributes
        if legacy { fixed["format_version"] = "1" }
        for (k, v) in fixed { stringAttribute(f, k, v, variable: legacy) }
        let crc = Int64(CRC32.of(Array(fixed.sorted { $0.key < $1.key }.map { Array($0.key.utf8) + [0] + Array($0.value.utf8) + [0] }.joined())))
        intAttribute(f, "attributes_crc32", [crc])
        intAttribute(f, "committed_rows", legacy ? [3] : [3, ~3])
        let str = H5Tcopy(rf_H5T_C_S1())
        H5Tset_size(str, legacy ? rf_H5T_VARIABLE() : 16)
        var n: hsize_t = 3
        let ts = H5Screate_simple(1, &n, nil)
        H5Dclose(H5Dcreate2(f, "text", str, ts, rf_H5P_DEFAULT(), rf_H5P_DEFAULT(), rf_H5P_DEFAULT()))
        var cdims: [hsize_t] = [3, 3]
        let cs = H5Screate_simple(2, &cdims, nil)
        H5Dclose(H5Dcreate2(f, "checksum", rf_H5T_STD_U32LE(), cs, rf_H5P_DEFAULT(), rf_H5P_DEFAULT(), rf_H5P_DEFAULT()))
        H5Sclose(cs)
        for (name, side) in [("noise", 4), ("image", 8)] {
            var dims: [hsize_t] = [3, 1, hsize_t(side), hsize_t(side)]
            let s = H5Screate_simple(4, &dims, nil)
            let dcpl = H5Pcreate(rf_H5P_DATASET_CREATE())
            if compactNoise && name == "noise" { H5Pset_layout(dcpl, H5D_COMPACT) }
            H5Dclose(H5Dcreate2(f, name, rf_H5T_NATIVE_FLOAT(), s, rf_H5P_DEFAULT(), dcpl, rf_H5P_DEFAULT()))
            H5Pclose(dcpl); H5Sclose(s)
        }
        H5Sclose(ts); H5Tclose(str); H5Fclose(f)
    }

    static func stringAttribute(_ obj: hid_t, _ name: String, _ value: String, variable: Bool = false) {
        let t = H5Tcopy(rf_H5T_C_S1())
        H5Tset_size(t, variable ? rf_H5T_VARIABLE() : max(1, value.utf8.count))
        let s = H5Screate(H5S_SCALAR)
        let a = H5Acreate2(obj, name, t, s, rf_H5P_DEFAULT(), rf_H5P_DEFAULT())
        value.withCString { p in
            var q: UnsafePointer<CChar>? = p
            if variable { H5Awrite(a, t, &q) } else { H5Awrite(a, t, p) }
        }
        H5Aclose(a); H5Sclose(s); H5Tclose(t)
    }

    /// An int64 attribute: scalar for one value, else 1-D; replaced when it exists.
    static func intAttribute(_ obj: hid_t, _ name: String, _ values: [Int64]) {
        if H5Aexists(obj, name) > 0 { H5Adelete(obj, name) }
        var n = hsize_t(values.count)
        let s = values.count == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, nil)
        let a = H5Acreate2(obj, name, rf_H5T_STD_I64LE(), s, rf_H5P_DEFAULT(), rf_H5P_DEFAULT())
        var v = values
        H5Awrite(a, rf_H5T_NATIVE_INT64(), &v)
        H5Aclose(a); H5Sclose(s)
    }

    /// Extends all three datasets by `rows` rows of garbage without touching `committed_rows`.
    static func appendGarbageRows(_ path: String, rows: Int) throws {
        let f = H5Fopen(path, rf_H5F_ACC_RDWR(), rf_H5P_DEFAULT())
        defer { H5Fclose(f) }
        for name in ["noise", "image", "text", "checksum"] {
            let d = H5Dopen2(f, name, rf_H5P_DEFAULT())
            let s = H5Dget_space(d)
            let rank = Int(H5Sget_simple_extent_ndims(s))
            var dims = [hsize_t](repeating: 0, count: rank)
            H5Sget_simple_extent_dims(s, &dims, nil)
            H5Sclose(s)
            let old = dims[0]
            dims[0] += hsize_t(rows)
            XCTAssertGreaterThanOrEqual(H5Dset_extent(d, &dims), 0)
            if name == "noise" || name == "image" {
                let fs = H5Dget_space(d)
                var start = [hsize_t](repeating: 0, count: rank)
                start[0] = old
                var count = dims
                count[0] = hsize_t(rows)
                H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, nil, &count, nil)
                let ms = H5Screate_simple(Int32(rank), &count, nil)
                var junk = [Float](repeating: .nan, count: Int(count.reduce(1, *)))
                XCTAssertGreaterThanOrEqual(H5Dwrite(d, rf_H5T_NATIVE_FLOAT(), ms, fs, rf_H5P_DEFAULT(), &junk), 0)
                H5Sclose(ms); H5Sclose(fs)
            }
            H5Dclose(d)
        }
    }

    static func rows(_ path: String, _ name: String) -> Int {
        let f = H5Fopen(path, rf_H5F_ACC_RDONLY(), rf_H5P_DEFAULT())
        defer { H5Fclose(f) }
        let d = H5Dopen2(f, name, rf_H5P_DEFAULT())
        defer { H5Dclose(d) }
        let s = H5Dget_space(d)
        defer { H5Sclose(s) }
        var dims = [hsize_t](repeating: 0, count: 4)
        H5Sget_simple_extent_dims(s, &dims, nil)
        return Int(dims[0])
    }
}

/// CRC32 (zlib's polynomial), bit by bit: an implementation independent of the one under test.
enum CRC32 {
    static func of(_ bytes: [UInt8], _ start: UInt32 = 0) -> UInt32 {
        var c = ~start
        for b in bytes {
            c ^= UInt32(b)
            for _ in 0..<8 { c = (c >> 1) ^ (c & 1 == 1 ? 0xEDB8_8320 : 0) }
        }
        return ~c
    }

    /// The format's row checksum: the row index as int64 little-endian, then the row's bytes.
    static func row(_ i: Int, _ bytes: [UInt8]) -> UInt32 {
        of(withUnsafeBytes(of: Int64(i).littleEndian) { Array($0) } + bytes)
    }
}

enum Python {
    /// Runs python3 with `args`; (exit status, stdout + stderr). Status -1 when python3 is missing.
    static func run(_ args: [String]) -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3"] + args
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        do { try p.run() } catch { return (-1, "\(error)") }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}

extension HDF5Fixture {
    /// Overwrites row `row` of dataset `name` with `values` (of HDF5 memory type `type`), as damage
    /// or another tool would, bypassing our writer and its checks.
    static func patchRow<T>(_ path: String, _ name: String, row: Int, _ values: [T], type: hid_t) {
        let f = H5Fopen(path, rf_H5F_ACC_RDWR(), rf_H5P_DEFAULT())
        defer { H5Fclose(f) }
        let d = H5Dopen2(f, name, rf_H5P_DEFAULT())
        defer { H5Dclose(d) }
        let fs = H5Dget_space(d)
        defer { H5Sclose(fs) }
        let rank = Int(H5Sget_simple_extent_ndims(fs))
        var dims = [hsize_t](repeating: 0, count: rank)
        H5Sget_simple_extent_dims(fs, &dims, nil)
        var start = [hsize_t](repeating: 0, count: rank)
        start[0] = hsize_t(row)
        var count = dims
        count[0] = 1
        H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, nil, &count, nil)
        let ms = H5Screate_simple(Int32(rank), &count, nil)
        defer { H5Sclose(ms) }
        var v = values
        XCTAssertGreaterThanOrEqual(H5Dwrite(d, type, ms, fs, rf_H5P_DEFAULT(), &v), 0)
    }

    /// Writes float row `row` of /noise or /image; with `fixChecksum`, also the matching CRC32
    /// (what a foreign writer with bad values would produce).
    static func patchFloats(_ path: String, _ name: String, row: Int, _ values: [Float], fixChecksum: Bool) {
        patchRow(path, name, row: row, values, type: rf_H5T_NATIVE_FLOAT())
        guard fixChecksum else { return }
        let r = try! TripletReader(path: path)
        let texts = (0..<r.count).map { Rows.text($0) }
        r.close()
        let column = name == "noise" ? 1 : 2
        var sums = [UInt32](repeating: 0, count: 3)
        sums[0] = CRC32.row(row, Array(texts[row].utf8) + [UInt8](repeating: 0, count: 256 - texts[row].utf8.count))
        let other = (0..<Rows.size).map { name == "noise" ? Rows.image(row, $0) : Rows.noise(row, $0) }
        sums[column] = CRC32.row(row, values.withUnsafeBytes { Array($0) })
        sums[3 - column] = CRC32.row(row, other.withUnsafeBytes { Array($0) })
        patchRow(path, "checksum", row: row, sums, type: rf_H5T_NATIVE_UINT32())
    }
}

extension HDF5Fixture {
    /// Byte ranges of every chunk of the four datasets (where damage hits row data).
    static func chunkRegions(_ path: String) -> [Range<Int>] {
        let f = H5Fopen(path, rf_H5F_ACC_RDONLY(), rf_H5P_DEFAULT())
        defer { H5Fclose(f) }
        var out = [Range<Int>]()
        for name in ["text", "noise", "image", "checksum"] {
            let d = H5Dopen2(f, name, rf_H5P_DEFAULT())
            let s = H5Dget_space(d)
            var n: hsize_t = 0
            H5Dget_num_chunks(d, s, &n)
            for i in 0..<n {
                var offset = [hsize_t](repeating: 0, count: 8)
                var mask: UInt32 = 0
                var addr: haddr_t = 0
                var size: hsize_t = 0
                if H5Dget_chunk_info(d, s, i, &offset, &mask, &addr, &size) >= 0, size > 0 {
                    out.append(Int(addr)..<(Int(addr) + Int(size)))
                }
            }
            H5Sclose(s)
            H5Dclose(d)
        }
        return out
    }
}
