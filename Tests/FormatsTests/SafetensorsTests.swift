import Foundation
import XCTest
import Autograd
import Formats
import TensorCore
import TestSupport

/// Raw safetensors bytes from a header string and a data section (for malformed files).
func rawSafetensors(header: String, data: [UInt8], lengthField: UInt64? = nil) -> Data {
    var out = Data()
    var n = (lengthField ?? UInt64(header.utf8.count)).littleEndian
    withUnsafeBytes(of: &n) { out.append(contentsOf: $0) }
    out.append(contentsOf: Array(header.utf8))
    out.append(contentsOf: data)
    return out
}

func floatBytes(_ xs: [Float]) -> [UInt8] { xs.flatMap { withUnsafeBytes(of: $0.bitPattern.littleEndian) { Array($0) } } }

final class SafetensorsTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try makeTempDir("st") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func testRoundTripWithMetadata() throws {
        let url = dir.appendingPathComponent("a.safetensors")
        let a = randn([2, 3, 4]), b = Tensor([1.5], shape: []), c = Tensor.zeros([0, 3])
        let meta = ["config": "{\"dim\": 64, \"path\": \"a/b\"}", "stage": "teacher", "üñí": "çødé"]
        try Safetensors.write([("layer.weight", a), ("scale", b), ("empty", c)], metadata: meta, to: url)
        let r = try Safetensors.read(url)
        XCTAssertEqual(r.names, ["layer.weight", "scale", "empty"])
        XCTAssertEqual(r["layer.weight"]?.shape, [2, 3, 4])
        XCTAssertEqual(r["layer.weight"]?.scalars, a.scalars)
        XCTAssertEqual(r["scale"]?.shape, [])
        XCTAssertEqual(r["scale"]?.scalars, [1.5])
        XCTAssertEqual(r["empty"]?.shape, [0, 3])
        XCTAssertEqual(r.dtypes["scale"], .F32)
        XCTAssertEqual(r.metadata, meta)
        XCTAssertEqual(try Safetensors.readMetadata(url), meta)

        // Layout: 8-byte length, header padded to 8 bytes, then 24 + 1 floats.
        let bytes = try Data(contentsOf: url)
        let n = bytes.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        XCTAssertEqual(n % 8, 0)
        XCTAssertEqual(bytes.count, 8 + Int(n) + 25 * 4)
        let json = try JSONSerialization.jsonObject(with: bytes.subdata(in: 8..<(8 + Int(n)))) as! [String: Any]
        let entry = json["layer.weight"] as! [String: Any]
        XCTAssertEqual(entry["dtype"] as? String, "F32")
        XCTAssertEqual(entry["shape"] as? [Int], [2, 3, 4])
        XCTAssertEqual(entry["data_offsets"] as? [Int], [0, 96])
    }

    func testAtomicWriteLeavesNoTemporaryFilesAndReplaces() throws {
        let url = dir.appendingPathComponent("w.safetensors")
        try Safetensors.write([("x", Tensor([1, 2], shape: [2]))], to: url)
        try Safetensors.write([("x", Tensor([3, 4, 5], shape: [3]))], to: url)
        XCTAssertEqual(try Safetensors.read(url)["x"]?.scalars, [3, 4, 5])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["w.safetensors"])

        // Invalid input: nothing is written, the old file stays whole.
        assertThrows(["safetensors \(url.path): tensor 'x': name used twice"]) {
            try Safetensors.write([("x", Tensor([1], shape: [1])), ("x", Tensor([2], shape: [1]))], to: url)
        }
        XCTAssertEqual(try Safetensors.read(url)["x"]?.scalars, [3, 4, 5])

        // The final rename fails (the target is a non-empty folder): the error names the file
        // and the temporary file is removed.
        let blocked = dir.appendingPathComponent("blocked.safetensors")
        try FileManager.default.createDirectory(at: blocked.appendingPathComponent("sub"), withIntermediateDirectories: true)
        assertThrows(["safetensors \(blocked.path): cannot rename the temporary file into place"]) {
            try Safetensors.write([("x", Tensor([1], shape: [1]))], to: blocked)
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted(),
                       ["blocked.safetensors", "w.safetensors"])

        let missing = dir.appendingPathComponent("no/such/dir/f.safetensors")
        assertThrows(["\(missing.path): cannot write: the folder \(dir.path)/no/such/dir does not exist"]) {
            try Safetensors.write([("x", Tensor([1], shape: [1]))], to: missing)
        }
    }

    func testReadsOtherDTypes() throws {
        // F16: 1.0 (0x3C00), -2.5 (0xC100), 2^-24 (subnormal 0x0001), inf (0x7C00);
        // BF16: 1.0 (0x3F80), -3.0 (0xC040); F64 0.1; I64 -7; U8 200; BOOL [1, 0].
        var data: [UInt8] = [0x00, 0x3C, 0x00, 0xC1, 0x01, 0x00, 0x00, 0x7C]
        data += [0x80, 0x3F, 0x40, 0xC0]
        data += withUnsafeBytes(of: (0.1).bitPattern.littleEndian) { Array($0) }
        data += withUnsafeBytes(of: Int64(-7).littleEndian) { Array($0) }
        data += [200, 1, 0]
        let header = """
        {"h":{"dtype":"F16","shape":[4],"data_offsets":[0,8]},"b":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]},\
        "d":{"dtype":"F64","shape":[],"data_offsets":[12,20]},"i":{"dtype":"I64","shape":[1],"data_offsets":[20,28]},\
        "u":{"dtype":"U8","shape":[1],"data_offsets":[28,29]},"z":{"dtype":"BOOL","shape":[2],"data_offsets":[29,31]}}
        """
        let url = dir.appendingPathComponent("types.safetensors")
        try rawSafetensors(header: header, data: data).write(to: url)
        let r = try Safetensors.read(url)
        XCTAssertEqual(r["h"]?.scalars, [1, -2.5, Float(sign: .plus, exponent: -24, significand: 1), .infinity])
        XCTAssertEqual(r["b"]?.scalars, [1, -3])
        XCTAssertEqual(r["d"]?.scalars, [Float(0.1)])
        XCTAssertEqual(r["i"]?.scalars, [-7])
        XCTAssertEqual(r["u"]?.scalars, [200])
        XCTAssertEqual(r["z"]?.scalars, [1, 0])
        XCTAssertEqual(r.dtypes["h"], .F16)
        XCTAssertEqual(r.names, ["h", "b", "d", "i", "u", "z"])
    }

    /// Every malformed file throws an error naming the file and, where there is one, the tensor.
    func testMalformedFiles() throws {
        let url = dir.appendingPathComponent("bad.safetensors")
        let p = url.path
        func check(_ data: Data, _ fragments: [String], line: UInt = #line) throws {
            try data.write(to: url)
            assertThrows(fragments, line: line) { _ = try Safetensors.read(url) }
        }
        let ok = "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}"
        try check(Data([1, 2, 3]), ["safetensors \(p): file too short: 3 bytes"])
        // Not safetensors at all (a README handed to reflow-sample): said in those words.
        try check(Data("# reflow\n\nThe InstaFlow chain, from a teacher to a one-step student.\n".utf8),
                  ["safetensors \(p): not a safetensors file"])
        try check(rawSafetensors(header: ok, data: floatBytes([1, 2]), lengthField: 1000),
                  ["safetensors \(p): header length 1000 exceeds the file size (70 bytes"])
        // Truncated data section: the header now claims more bytes than remain.
        let full = rawSafetensors(header: ok, data: floatBytes([1, 2]))
        try check(full.prefix(full.count - 3), ["safetensors \(p): tensor 'x': data_offsets [0, 8] out of range (data section is 5 bytes; truncated file?)"])
        try check(rawSafetensors(header: "{\"x\": {\"dtype\": ", data: []), ["safetensors \(p): invalid JSON header"])
        try check(rawSafetensors(header: "[1, 2]", data: []), ["safetensors \(p): invalid JSON header: the header must be a JSON object"])
        try check(rawSafetensors(header: "{\"x\":{\"dtype\":\"F32\",\"shape\":[2]}}", data: floatBytes([1, 2])),
                  ["safetensors \(p): tensor 'x': malformed entry", "data_offsets"])
        try check(rawSafetensors(header: "{\"x\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", data: floatBytes([1, 2])),
                  ["safetensors \(p): tensor 'x': unknown dtype 'Q4' (supported: F64, F32"])
        try check(rawSafetensors(header: "{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", data: floatBytes([1, 2])),
                  ["safetensors \(p): tensor 'x': data_offsets [0, 8] span 8 bytes, but shape [3] of F32 needs 12 bytes"])
        try check(rawSafetensors(header: "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,0]}}", data: floatBytes([1, 2])),
                  ["safetensors \(p): tensor 'x': data_offsets [4, 0] out of range"])
        try check(rawSafetensors(header: "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"y\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                                 data: floatBytes([1, 2])),
                  ["safetensors \(p): tensor 'y': data_offsets [4, 8] overlap tensor 'x' [0, 8]"])
        try check(rawSafetensors(header: "{\"x\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", data: floatBytes([1, 2])),
                  ["safetensors \(p): tensor 'x': negative dimension -2"])
        try check(rawSafetensors(header: "{\"__metadata__\":{\"step\":3}}", data: []),
                  ["safetensors \(p): __metadata__ must map strings to strings"])
        assertThrows(["safetensors \(dir.path)/missing.safetensors: cannot read file"]) {
            _ = try Safetensors.read(dir.appendingPathComponent("missing.safetensors"))
        }
    }

    /// The layout Python's safetensors writes (checked by hand against a file from
    /// safetensors.torch.save_file): "__metadata__" first, header padded with spaces, mixed
    /// dtypes, data order unrelated to the header's key order.
    func testReadsPythonStyleLayout() throws {
        let header = "{\"__metadata__\":{\"k\":\"v\"},\"b\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[24,26]},\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}"
        var padded = header
        while padded.utf8.count % 8 != 0 { padded += " " }
        let url = dir.appendingPathComponent("py.safetensors")
        try rawSafetensors(header: padded, data: floatBytes([0, 0.25, 0.5, 0.75, 1, 1.25]) + [0x00, 0xBC]).write(to: url)
        let r = try Safetensors.read(url)
        XCTAssertEqual(r.names, ["w", "b"])
        XCTAssertEqual(r["w"]?.scalars, [0, 0.25, 0.5, 0.75, 1, 1.25])
        XCTAssertEqual(r["b"]?.scalars, [-1])
        XCTAssertEqual(r.metadata, ["k": "v"])
    }
}
