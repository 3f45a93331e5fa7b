import CHDF5
import TripletStore
import Formats
import Foundation
import TensorCore
import XCTest
import TestSupport

/// Format 2's checks: bad values, damaged rows and attributes, full disks and read-only folders
/// end in errors that name the file (and the dataset and row), never in wrong data or a crash.
final class TripletChecksTests: TripletTestCase {
    private func assertError(_ body: @autoclosure () throws -> Any, contains parts: [String],
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try body(), file: file, line: line) { e in
            for p in parts { XCTAssertTrue("\(e)".contains(p), "'\(e)' lacks '\(p)'", file: file, line: line) }
        }
    }

    private func fresh(_ name: String, rows: Int = 12) throws -> String {
        let path = dir + "/\(name).h5"
        let w = try TripletWriter(path: path, itemShape: Rows.shape, attributes: attrs, rowsPerChunk: 4)
        try Rows.append(w, 0..<rows)
        try w.close()
        return path
    }

    private func readAll(_ path: String) throws { let r = try TripletReader(path: path); _ = try r.read(0..<r.count) }
    private func resume(_ path: String) throws { try TripletWriter(path: path, itemShape: Rows.shape, attributes: attrs, mode: .append).close() }

    func testBadValuesAndDamagedRowsNameFileDatasetAndRow() throws {
        // Finite garbage with a valid checksum (a foreign writer): the bounds check.
        let big = try fresh("big")
        var img = (0..<Rows.size).map { Rows.image(5, $0) }
        img[7] = 1e4
        HDF5Fixture.patchFloats(big, "image", row: 5, img, fixChecksum: true)
        assertError(try readAll(big), contains: [big, "'/image' row 5 element 7", "10000", "outside [-10.0, 10.0]"])
        assertError(try resume(big), contains: [big, "'/image' row 5 element 7"])
        // Rows before the bad one still read.
        Rows.check(try TripletReader(path: big).read(0..<5), Array(0..<5))

        let nan = try fresh("nan")
        var x0 = (0..<Rows.size).map { Rows.noise(3, $0) }
        x0[0] = .nan
        HDF5Fixture.patchFloats(nan, "noise", row: 3, x0, fixChecksum: true)
        assertError(try readAll(nan), contains: [nan, "'/noise' row 3 element 0", "not finite"])

        // Damage without a matching checksum: one changed bit, one changed caption.
        let flip = try fresh("flip")
        var y = (0..<Rows.size).map { Rows.image(7, $0) }
        y[3] = y[3].nextUp
        HDF5Fixture.patchFloats(flip, "image", row: 7, y, fixChecksum: false)
        assertError(try readAll(flip), contains: [flip, "'/image' row 7", "fails its checksum"])
        assertError(try resume(flip), contains: [flip, "'/image' row 7", "fails its checksum"])

        let text = try fresh("text")
        HDF5Fixture.patchRow(text, "text", row: 2, Array("caption 2: unicode".utf8) + [UInt8](repeating: 0, count: 238),
                             type: try XCTUnwrap(Optional(H5Tcopy(rf_H5T_C_S1()))).sized(256))
        assertError(try TripletReader(path: text).readTexts(0..<12), contains: [text, "'/text' row 2", "fails its checksum"])

        // A changed attribute value, and a commit marker that disagrees with its complement.
        let attr = try fresh("attr")
        var f = H5Fopen(attr, rf_H5F_ACC_RDWR(), rf_H5P_DEFAULT())
        H5Adelete(f, "seed")
        HDF5Fixture.stringAttribute(f, "seed", "43")
        H5Fclose(f)
        assertError(try TripletReader(path: attr), contains: [attr, "attributes fail their checksum"])
        let marker = try fresh("marker")
        f = H5Fopen(marker, rf_H5F_ACC_RDWR(), rf_H5P_DEFAULT())
        HDF5Fixture.intAttribute(f, "committed_rows", [5, 5])
        H5Fclose(f)
        assertError(try TripletReader(path: marker), contains: [marker, "committed_rows"])
        assertError(try resume(marker), contains: [marker, "committed_rows"])
    }

    func testWriterRefusesBadRows() throws {
        let path = dir + "/w.h5"
        let w = try TripletWriter(path: path, itemShape: Rows.shape, attributes: attrs, rowsPerChunk: 4, textBytes: 32)
        try Rows.append(w, 0..<5)
        var x0 = [Float](repeating: 0, count: 3 * Rows.size), x1 = x0
        x1[2 * Rows.size + 1] = .nan
        assertError(try w.append(texts: ["a", "b", "c"], noise: x0, images: x1),
                    contains: [path, "'/image' row 7 element 1", "not finite", "refusing"])
        x1[2 * Rows.size + 1] = 0
        x0[Rows.size] = -11
        assertError(try w.append(texts: ["a", "b", "c"], noise: x0, images: x1), contains: [path, "'/noise' row 6 element 0", "-11"])
        x0[Rows.size] = 0
        assertError(try w.append(texts: ["a", String(repeating: "é", count: 17), "c"], noise: x0, images: x1),
                    contains: [path, "row 6", "34 bytes", "32 bytes"])
        assertError(try w.append(texts: ["a\u{0}b", "b", "c"], noise: x0, images: x1), contains: [path, "row 5", "NUL"])
        XCTAssertEqual(w.count, 5)  // refused batches leave nothing behind
        try w.close()
        XCTAssertEqual(try TripletReader(path: path).textBytes, 32)
        Rows.check(try TripletReader(path: path).read(0..<5), Array(0..<5))
    }
}

extension hid_t {
    /// This string type id with its size set (test helper for fixed-length string rows).
    func sized(_ n: Int) -> hid_t {
        H5Tset_size(self, n); H5Tset_strpad(self, H5T_STR_NULLPAD); H5Tset_cset(self, H5T_CSET_UTF8)
        return self
    }
}

extension TripletChecksTests {
    /// The stored row checksums equal an independent bit-by-bit CRC32 (zlib's; the h5py test
    /// checks them against Python's zlib.crc32), for texts and rows of several lengths.
    func testRowChecksumsMatchAnIndependentCRC32() throws {
        let path = dir + "/crc.h5"
        let w = try TripletWriter(path: path, itemShape: [1, 1, 13], attributes: attrs, rowsPerChunk: 3, textBytes: 40)
        let texts = ["", "a", "caption 2: ünïcödé ✓", String(repeating: "x", count: 40)]
        let x0 = (0..<(4 * 13)).map { Float($0) / 7 }, x1 = (0..<(4 * 13)).map { -Float($0) / 100 }
        try w.append(texts: texts, noise: x0, images: x1)
        try w.close()
        let f = H5Fopen(path, rf_H5F_ACC_RDONLY(), rf_H5P_DEFAULT())
        defer { H5Fclose(f) }
        let d = H5Dopen2(f, "checksum", rf_H5P_DEFAULT())
        defer { H5Dclose(d) }
        var stored = [UInt32](repeating: 0, count: 12)
        XCTAssertGreaterThanOrEqual(H5Dread(d, rf_H5T_NATIVE_UINT32(), rf_H5S_ALL(), rf_H5S_ALL(), rf_H5P_DEFAULT(), &stored), 0)
        for i in 0..<4 {
            let text = Array(texts[i].utf8) + [UInt8](repeating: 0, count: 40 - texts[i].utf8.count)
            XCTAssertEqual(stored[3 * i], CRC32.row(i, text), "text \(i)")
            XCTAssertEqual(stored[3 * i + 1], CRC32.row(i, x0[(13 * i)..<(13 * i + 13)].withUnsafeBytes { Array($0) }), "noise \(i)")
            XCTAssertEqual(stored[3 * i + 2], CRC32.row(i, x1[(13 * i)..<(13 * i + 13)].withUnsafeBytes { Array($0) }), "image \(i)")
        }
        XCTAssertEqual(CRC32.of(Array("123456789".utf8)), 0xCBF4_3926)  // the standard check value
    }
}

extension TripletChecksTests {
    /// A triplet file written from Python with h5py alone, following the format's documentation
    /// (ASCII fixed-length strings, as numpy's 'S' dtype gives), reads with our reader.
    func testFileWrittenByH5pyFromTheDocsReads() throws {
        guard Python.run(["-c", "import h5py"]).status == 0 else { throw XCTSkip("python3 with h5py is not available") }
        let path = dir + "/from-python.h5"
        let attrsPy = attrs.map { "'\($0.key)': '\($0.value)'" }.joined(separator: ", ")
        let script = """
        import sys, zlib, h5py, numpy as np
        n, size = 5, 32
        texts = [("caption %d: ünïcödé ✓" % i).encode() for i in range(n)]
        j = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
        x0 = np.stack([np.float32(i % 500) / np.float32(100) + j / np.float32(1000) for i in range(n)])
        x1 = np.stack([-np.float32(i % 500) / np.float32(1000) - j / np.float32(10000) for i in range(n)])
        strs = {"format": "reflow-triplets", "format_version": "2",
                "time_convention": "t=0 noise, t=1 data; x_t = t*x1 + (1-t)*x0", \(attrsPy)}
        row = lambda i, b: zlib.crc32(np.int64(i).tobytes() + b)
        with h5py.File(sys.argv[1], "w") as f:
            f["text"] = np.array(texts, dtype="S%d" % size)
            f["noise"], f["image"] = x0, x1
            f["checksum"] = np.array([[row(i, texts[i].ljust(size, b"\\0")), row(i, x0[i].astype("<f4").tobytes()),
                                       row(i, x1[i].astype("<f4").tobytes())] for i in range(n)], dtype=np.uint32)
            for k, v in strs.items():
                f.attrs[k] = np.bytes_(v.encode())
            f.attrs["attributes_crc32"] = np.int64(zlib.crc32(b"".join(k.encode() + b"\\0" + v.encode() + b"\\0" for k, v in sorted(strs.items()))))
            f.attrs["committed_rows"] = np.array([n, ~n], dtype=np.int64)
        print("ok")
        """
        let r = Python.run(["-c", script, path])
        XCTAssertEqual(r.status, 0, r.output)
        let reader = try TripletReader(path: path)
        XCTAssertEqual(reader.count, 5)
        XCTAssertEqual(reader.writerAttributes, attrs)
        Rows.check(try reader.read(0..<5), Array(0..<5))
    }
}
