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
    // Within the format's bounds (|noise| <= 10, |image| <= 10) and distinct for the first 500 rows.
    static func noise(_ i: Int, _ j: Int) -> Float { Float(i % 500) / 100 + Float(j) / 1000 }
    static func image(_ i: Int, _ j: Int) -> Float { -Float(i % 500) / 1000 - Float(j) / 10000 }

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
        XCTAssertEqual(r.attributes["format_version"], "2")
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

    /// While a writer runs, a second writer is refused in every mode, --overwrite included (it
    /// would replace the file under the first one, which then commits rows nobody sees).
    func testSecondWriterRefusedWhileFirstRuns() throws {
        let path = dir + "/busy.h5"
        let w = try TripletWriter(path: path, itemShape: Rows.shape, attributes: attrs, rowsPerChunk: 4)
        try Rows.append(w, 0..<8)
        for mode in [TripletWriter.Mode.overwrite, .createOrAppend, .append] {
            assertError(try TripletWriter(path: path, itemShape: Rows.shape, attributes: attrs, mode: mode),
                        contains: [path, "another process is writing this file", ".busy.h5.lock"])
        }
        try Rows.append(w, 8..<12)
        try w.close()
        Rows.check(try TripletReader(path: path).read(0..<12), Array(0..<12))
        // Closed: the lock is free again.
        let again = try TripletWriter(path: path, itemShape: Rows.shape, attributes: attrs, mode: .append)
        XCTAssertEqual(again.count, 12)
        try again.close()
    }

    /// Temporaries of a dead writer beside the file are removed; those of live processes and
    /// unrelated files stay.
    func testStaleWriterTemporariesRemoved() throws {
        let path = dir + "/stale.h5"
        let dead = pid_t(Int32.max - 7)  // above pid_max: no such process
        let live = getppid()
        let names = ["stale.h5.partial-\(dead)", ".stale.h5.partial-\(dead).lock", "stale.h5.salvage-\(dead)",
                     "stale.h5.partial-\(live)", "stale.h5.partial-x", "other.h5.partial-\(dead)"]
        for n in names { XCTAssertTrue(FileManager.default.createFile(atPath: dir + "/" + n, contents: Data([1]))) }
        XCTAssertEqual(TripletWriter.removeStaleTemporaries(besides: path).sorted(),
                       [".stale.h5.partial-\(dead).lock", "stale.h5.partial-\(dead)", "stale.h5.salvage-\(dead)"])
        for n in names.suffix(3) { XCTAssertTrue(FileManager.default.fileExists(atPath: dir + "/" + n), n) }
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

        // Compact storage: libhdf5 1.10 trusts its stored size (a damaged one crashed H5Dread).
        let compact = dir + "/compact.h5"
        HDF5Fixture.ourAttributesWrongShapes(compact, compactNoise: true)
        assertError(try TripletReader(path: compact), contains: [compact, "'/noise'", "compact"])

        // Format 1 (variable-length strings) is refused without reading them, by readers and writers.
        let old = dir + "/old.h5"
        HDF5Fixture.ourAttributesWrongShapes(old, legacy: true)
        assertError(try TripletReader(path: old), contains: [old, "format version 1", "--overwrite"])
        assertError(try TripletWriter(path: old, itemShape: [1, 4, 4], attributes: [:], mode: .append),
                    contains: [old, "format version 1", "--overwrite"])

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
        import sys, zlib, h5py, numpy as np
        f = h5py.File(sys.argv[1], "r")
        a = f.attrs
        s = lambda k: a[k].decode("utf-8")
        assert s("format") == "reflow-triplets", a["format"]
        assert s("format_version") == "2"
        assert s("time_convention") == "t=0 noise, t=1 data; x_t = t*x1 + (1-t)*x0"
        assert s("solver") == "rk4" and s("seed") == "42" and s("teacher_sha256") == "abc123"
        n, check = (int(v) for v in a["committed_rows"])
        assert n == 70 and check == ~70, a["committed_rows"]
        t, x0, x1, c = f["text"], f["noise"], f["image"], f["checksum"]
        assert h5py.check_string_dtype(t.dtype).encoding == "utf-8", t.dtype
        assert h5py.check_string_dtype(t.dtype).length == 256, t.dtype
        assert t.shape == (70,) and t.maxshape == (None,)
        assert c.dtype == np.uint32 and c.shape == (70, 3) and c.maxshape == (None, 3), c
        # The documented checksums, computed here without our code.
        attrs = b"".join(k.encode() + b"\\0" + a[k] + b"\\0" for k in sorted(a) if k not in ("committed_rows", "attributes_crc32"))
        assert zlib.crc32(attrs) == int(a["attributes_crc32"]), "attributes_crc32"
        for i in (0, 37, 69):
            pre = np.int64(i).tobytes()
            assert zlib.crc32(pre + t[i].ljust(256, b"\\0")) == c[i, 0]
            assert zlib.crc32(pre + x0[i].astype("<f4").tobytes()) == c[i, 1]
            assert zlib.crc32(pre + x1[i].astype("<f4").tobytes()) == c[i, 2]
        for d in (x0, x1):
            assert d.dtype == np.float32, d.dtype
            assert d.shape == (70, 2, 3, 4), d.shape
            assert d.maxshape == (None, 2, 3, 4), d.maxshape
            assert d.chunks[1:] == (2, 3, 4) and d.chunks[0] <= 64, d.chunks
            assert d.compression == "gzip", d.compression
        assert t[5].decode("utf-8") == "caption 5: ünïcödé ✓", t[5]
        j = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
        assert np.array_equal(x0[69], np.float32(69) / np.float32(100) + j / np.float32(1000))
        assert np.array_equal(x1[3], -np.float32(3) / np.float32(1000) - j / np.float32(10000))
        print("ok")
        """
        let r = Python.run(["-c", script, path])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("ok"), r.output)
    }
}
