import CHDF5
import TripletStore
import Formats
import Foundation
import TensorCore
import XCTest
import TestSupport

/// Rows whose content is a function of the row index, so any read can be checked.
enum Rows {
    static let shape = [2, 3, 4]
    static var size: Int { shape.reduce(1, *) }
    static func text(_ i: Int) -> String { "caption \(i): ünïcödé ✓" }
    static func noise(_ i: Int, _ j: Int) -> Float { Float(i) + Float(j) / 1000 }
    static func image(_ i: Int, _ j: Int) -> Float { -Float(i) - Float(j) / 100 }

    static func append(_ w: TripletWriter, _ range: Range<Int>) throws {
        var x0 = [Float](), x1 = [Float]()
        for i in range { for j in 0..<size { x0.append(noise(i, j)); x1.append(image(i, j)) } }
        try w.append(texts: range.map(text), noise: x0, images: x1)
    }

    static func check(_ b: TripletBatch, _ rows: [Int], file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(b.shape, [rows.count] + shape, file: file, line: line)
        XCTAssertEqual(b.texts, rows.map(text), file: file, line: line)
        var ok = true
        for (k, i) in rows.enumerated() {
            for j in 0..<size {
                ok = ok && b.noise.ptr[k * size + j] == noise(i, j) && b.images.ptr[k * size + j] == image(i, j)
            }
        }
        XCTAssertTrue(ok, "row contents differ", file: file, line: line)
    }
}

/// A fresh folder per test and the writer attributes every test file carries.
class TripletTestCase: XCTestCase {
    var dir = ""
    let attrs = ["teacher_checkpoint": "runs/teacher/step-1000.safetensors", "teacher_sha256": "abc123",
                 "solver": "rk4", "steps": "32", "guidance": "1.5", "seed": "42"]

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "triplets-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }
}

final class TripletStoreTests: TripletTestCase {

    private func assertError(_ body: @autoclosure () throws -> Any, contains parts: [String],
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { e in
            for p in parts { XCTAssertTrue("\(e)".contains(p), "'\(e)' lacks '\(p)'", file: file, line: line) }
        }
    }

    func testWriteAppendReopenRead() throws {
        let path = dir + "/pairs.h5"
        let w = try TripletWriter(path: path, itemShape: Rows.shape, attributes: attrs, rowsPerChunk: 4)
        XCTAssertEqual(w.count, 0)
        try Rows.append(w, 0..<5)
        try Rows.append(w, 5..<5)  // empty batch: no-op
        try Rows.append(w, 5..<11)
        XCTAssertEqual(w.count, 11)
        XCTAssertEqual(w.committedCount, 8)  // whole chunks of 4 are committed, 3 rows buffered
        XCTAssertEqual(try TripletReader(path: path).count, 8)
        try w.close()

        // Reopen: same attributes resume; count survives.
        let w2 = try TripletWriter(path: path, itemShape: Rows.shape, attributes: attrs, mode: .createOrAppend)
        XCTAssertEqual(w2.count, 11)
        try Rows.append(w2, 11..<20)
        try w2.close()

        let r = try TripletReader(path: path)
        XCTAssertEqual(r.count, 20)
        XCTAssertEqual(r.itemShape, Rows.shape)
        XCTAssertEqual(r.writerAttributes, attrs)
        XCTAssertEqual(r.attributes["format"], "reflow-triplets")
        XCTAssertEqual(r.attributes["format_version"], "1")
        XCTAssertEqual(r.attributes["time_convention"], "t=0 noise, t=1 data; x_t = t*x1 + (1-t)*x0")
        Rows.check(try r.read(0..<20), Array(0..<20))
        Rows.check(try r.read(3..<9), Array(3..<9))
        Rows.check(try r.read(rows: [17, 2, 3, 17, 0]), [17, 2, 3, 17, 0])
        XCTAssertEqual(try r.readTexts(19..<20), [Rows.text(19)])
        assertError(try r.read(15..<21), contains: [path, "outside the 20 committed rows"])
        r.close()

        // Refusals: existing file with .create, other attributes, other shape, fixed keys.
        assertError(try TripletWriter(path: path, itemShape: Rows.shape, attributes: attrs),
                    contains: [path, "already exists"])
        var other = attrs
        other["solver"] = "euler"
        assertError(try TripletWriter(path: path, itemShape: Rows.shape, attributes: other, mode: .append),
                    contains: [path, "'solver': file has 'rk4', writer has 'euler'"])
        assertError(try TripletWriter(path: path, itemShape: [2, 3, 5], attributes: attrs, mode: .append),
                    contains: [path, "[2, 3, 4]", "[2, 3, 5]"])
        assertError(try TripletWriter(path: dir + "/x.h5", itemShape: Rows.shape, attributes: ["format": "mine"]),
                    contains: ["fixed"])
        assertError(try TripletWriter(path: dir + "/missing.h5", itemShape: Rows.shape, attributes: attrs, mode: .append),
                    contains: ["no such file"])
        // .overwrite starts over.
        let w3 = try TripletWriter(path: path, itemShape: Rows.shape, attributes: attrs, mode: .overwrite)
        XCTAssertEqual(w3.count, 0)
        try w3.close()
        XCTAssertEqual(try TripletReader(path: path).count, 0)
    }

    /// Rows past `committed_rows` (what a kill -9 between extend and commit leaves) are invisible to
    /// readers and dropped by a reopening writer.
    func testUncommittedRowsAreIgnoredAndTruncated() throws {
        let path = dir + "/pairs.h5"
        let w = try TripletWriter(path: path, itemShape: Rows.shape, attributes: attrs)
        try Rows.append(w, 0..<7)
        try w.close()
        try HDF5Fixture.appendGarbageRows(path, rows: 5)
        // Trailing bytes past HDF5's end of allocation, as a killed writer's slack leaves them.
        let h = try XCTUnwrap(FileHandle(forWritingAtPath: path))
        h.seekToEndOfFile()
        h.write(Foundation.Data(count: 100_000))
        h.closeFile()

        let r = try TripletReader(path: path)
        XCTAssertEqual(r.count, 7)
        Rows.check(try r.read(0..<7), Array(0..<7))
        assertError(try r.read(0..<8), contains: ["outside the 7 committed rows"])
        r.close()

        let w2 = try TripletWriter(path: path, itemShape: Rows.shape, attributes: attrs, mode: .append)
        XCTAssertEqual(w2.count, 7)
        try Rows.append(w2, 7..<10)
        try w2.close()
        let r2 = try TripletReader(path: path)
        XCTAssertEqual(r2.count, 10)
        Rows.check(try r2.read(0..<10), Array(0..<10))
        r2.close()
        XCTAssertEqual(HDF5Fixture.rows(path, "noise"), 10)
        XCTAssertEqual(HDF5Fixture.rows(path, "text"), 10)
    }

    func testBadFilesGiveClearErrors() throws {
        let missing = dir + "/nope.h5"
        assertError(try TripletReader(path: missing), contains: [missing, "no such file"])

        let junk = dir + "/junk.h5"
        var g = RNG(seed: 1)
        var bytes = [UInt8]()
        for _ in 0..<4096 { bytes.append(UInt8(truncatingIfNeeded: g.int(below: 256))) }
        try Foundation.Data(bytes).write(to: URL(fileURLWithPath: junk))
        assertError(try TripletReader(path: junk), contains: [junk, "not an HDF5 file"])

        let foreign = dir + "/foreign.h5"
        HDF5Fixture.foreignFile(foreign)
        assertError(try TripletReader(path: foreign),
                    contains: [foreign, "not a reflow triplet file", "'format' is missing"])

        let wrong = dir + "/wrong.h5"
        HDF5Fixture.ourAttributesWrongShapes(wrong)
        assertError(try TripletReader(path: wrong), contains: [wrong, "'/noise' has shape [3, 1, 4, 4]", "'/image' has [3, 1, 8, 8]"])

        // A real triplet file cut in half.
        let good = dir + "/good.h5", cut = dir + "/cut.h5"
        let w = try TripletWriter(path: good, itemShape: Rows.shape, attributes: attrs)
        try Rows.append(w, 0..<50)
        try w.close()
        let full = try Foundation.Data(contentsOf: URL(fileURLWithPath: good))
        try full.prefix(full.count / 2).write(to: URL(fileURLWithPath: cut))
        XCTAssertThrowsError(try { let r = try TripletReader(path: cut); _ = try r.read(0..<r.count) }()) { e in
            XCTAssertTrue("\(e)".contains(cut), "\(e)")
        }
    }

    func testMergeEqualsSingleFile() throws {
        let single = dir + "/single.h5"
        let w = try TripletWriter(path: single, itemShape: Rows.shape, attributes: attrs)
        try Rows.append(w, 0..<23)
        try w.close()
        var parts = [String]()
        for (k, range) in [0..<9, 9..<9, 9..<23].enumerated() {
            let p = dir + "/part\(k).h5"
            let pw = try TripletWriter(path: p, itemShape: Rows.shape, attributes: attrs)
            try Rows.append(pw, range)
            try pw.close()
            parts.append(p)
        }
        let merged = dir + "/merged.h5"
        XCTAssertEqual(try TripletStore.merge(parts: parts, into: merged), 23)
        let a = try TripletReader(path: single), b = try TripletReader(path: merged)
        XCTAssertEqual(a.count, b.count)
        XCTAssertEqual(a.attributes, b.attributes)
        let x = try a.read(0..<23), y = try b.read(0..<23)
        XCTAssertEqual(x.texts, y.texts)
        XCTAssertEqual(x.noise.array, y.noise.array)
        XCTAssertEqual(x.images.array, y.images.array)
        XCTAssertFalse(FileManager.default.fileExists(atPath: merged + ".merging-\(getpid())"))

        // Parts from different teachers do not merge silently.
        let odd = dir + "/odd.h5"
        var other = attrs
        other["teacher_sha256"] = "def456"
        let ow = try TripletWriter(path: odd, itemShape: Rows.shape, attributes: other)
        try ow.close()
        assertError(try TripletStore.merge(parts: [parts[0], odd], into: dir + "/m2.h5"), contains: [odd, "teacher_sha256"])
        XCTAssertEqual(try TripletStore.merge(parts: [parts[0], odd], into: dir + "/m3.h5", attributes: attrs), 9)
    }

    /// h5py, without our code, sees the documented layout (runs only where h5py is installed).
    func testReadableWithH5py() throws {
        guard Python.run(["-c", "import h5py"]).status == 0 else { throw XCTSkip("python3 with h5py is not available") }
        let path = dir + "/pairs.h5"
        let w = try TripletWriter(path: path, itemShape: Rows.shape, attributes: attrs)
        try Rows.append(w, 0..<70)
        try w.close()
        let script = """
        import sys, h5py, numpy as np
        f = h5py.File(sys.argv[1], "r")
        a = f.attrs
        assert a["format"] == "reflow-triplets", a["format"]
        assert a["format_version"] == "1"
        assert a["time_convention"] == "t=0 noise, t=1 data; x_t = t*x1 + (1-t)*x0"
        assert a["solver"] == "rk4" and a["seed"] == "42" and a["teacher_sha256"] == "abc123"
        assert int(a["committed_rows"]) == 70
        t, x0, x1 = f["text"], f["noise"], f["image"]
        assert h5py.check_string_dtype(t.dtype).encoding == "utf-8", t.dtype
        assert t.shape == (70,) and t.maxshape == (None,)
        for d in (x0, x1):
            assert d.dtype == np.float32, d.dtype
            assert d.shape == (70, 2, 3, 4), d.shape
            assert d.maxshape == (None, 2, 3, 4), d.maxshape
            assert d.chunks[1:] == (2, 3, 4) and d.chunks[0] <= 64, d.chunks
            assert d.compression == "gzip", d.compression
        assert t[5].decode("utf-8") == "caption 5: ünïcödé ✓", t[5]
        j = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
        assert np.array_equal(x0[69], np.float32(69) + j / np.float32(1000))
        assert np.array_equal(x1[3], -np.float32(3) - j / np.float32(100))
        print("ok")
        """
        let r = Python.run(["-c", script, path])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("ok"), r.output)
    }
}

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
    /// and /image disagree on the item shape.
    static func ourAttributesWrongShapes(_ path: String) {
        let f = H5Fcreate(path, rf_H5F_ACC_TRUNC(), rf_H5P_DEFAULT(), rf_H5P_DEFAULT())
        for (k, v) in TripletFormat.fixedAttributes { stringAttribute(f, k, v) }
        var committed: Int64 = 3
        let scalar = H5Screate(H5S_SCALAR)
        let a = H5Acreate2(f, "committed_rows", rf_H5T_NATIVE_INT64(), scalar, rf_H5P_DEFAULT(), rf_H5P_DEFAULT())
        H5Awrite(a, rf_H5T_NATIVE_INT64(), &committed)
        H5Aclose(a); H5Sclose(scalar)
        let str = H5Tcopy(rf_H5T_C_S1())
        H5Tset_size(str, rf_H5T_VARIABLE())
        var n: hsize_t = 3
        let ts = H5Screate_simple(1, &n, nil)
        H5Dclose(H5Dcreate2(f, "text", str, ts, rf_H5P_DEFAULT(), rf_H5P_DEFAULT(), rf_H5P_DEFAULT()))
        for (name, side) in [("noise", 4), ("image", 8)] {
            var dims: [hsize_t] = [3, 1, hsize_t(side), hsize_t(side)]
            let s = H5Screate_simple(4, &dims, nil)
            H5Dclose(H5Dcreate2(f, name, rf_H5T_NATIVE_FLOAT(), s, rf_H5P_DEFAULT(), rf_H5P_DEFAULT(), rf_H5P_DEFAULT()))
            H5Sclose(s)
        }
        H5Sclose(ts); H5Tclose(str); H5Fclose(f)
    }

    static func stringAttribute(_ obj: hid_t, _ name: String, _ value: String) {
        let t = H5Tcopy(rf_H5T_C_S1())
        H5Tset_size(t, rf_H5T_VARIABLE())
        let s = H5Screate(H5S_SCALAR)
        let a = H5Acreate2(obj, name, t, s, rf_H5P_DEFAULT(), rf_H5P_DEFAULT())
        value.withCString { p in
            var q: UnsafePointer<CChar>? = p
            H5Awrite(a, t, &q)
        }
        H5Aclose(a); H5Sclose(s); H5Tclose(t)
    }

    /// Extends all three datasets by `rows` rows of garbage without touching `committed_rows`.
    static func appendGarbageRows(_ path: String, rows: Int) throws {
        let f = H5Fopen(path, rf_H5F_ACC_RDWR(), rf_H5P_DEFAULT())
        defer { H5Fclose(f) }
        for name in ["noise", "image", "text"] {
            let d = H5Dopen2(f, name, rf_H5P_DEFAULT())
            let s = H5Dget_space(d)
            let rank = Int(H5Sget_simple_extent_ndims(s))
            var dims = [hsize_t](repeating: 0, count: rank)
            H5Sget_simple_extent_dims(s, &dims, nil)
            H5Sclose(s)
            let old = dims[0]
            dims[0] += hsize_t(rows)
            XCTAssertGreaterThanOrEqual(H5Dset_extent(d, &dims), 0)
            if name != "text" {
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
