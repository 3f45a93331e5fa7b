import Foundation
import Autograd
import TensorCore
#if canImport(Glibc)
import Glibc
#endif

/// A safetensors problem, naming the file and (when there is one) the tensor.
public struct SafetensorsError: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let tensor: String?
    public let message: String

    public init(path: String, tensor: String? = nil, _ message: String) {
        self.path = path
        self.tensor = tensor
        self.message = message
    }

    public var description: String {
        if let tensor { return "safetensors \(path): tensor '\(tensor)': \(message)" }
        return "safetensors \(path): \(message)"
    }
}

/// Element types we read. Everything is converted to Float32 on load; we write only F32.
public enum SafetensorsDType: String, CaseIterable, Sendable {
    case F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL

    public var byteSize: Int {
        switch self {
        case .F64, .I64: return 8
        case .F32, .I32: return 4
        case .F16, .BF16, .I16: return 2
        case .I8, .U8, .BOOL: return 1
        }
    }
}

/// The contents of a safetensors file: tensors (as Float32) and string metadata.
public struct SafetensorsArchive {
    /// Tensor names in file order (by data offset).
    public var names: [String]
    public var tensors: [String: Tensor]
    /// The dtype each tensor had in the file (before conversion to Float32).
    public var dtypes: [String: SafetensorsDType]
    public var metadata: [String: String]

    public subscript(name: String) -> Tensor? { tensors[name] }
}

/// Reading and writing the safetensors format: an 8-byte little-endian header length N, N bytes
/// of JSON header {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {..}}, then
/// the raw little-endian data (offsets relative to the start of the data section).
public enum Safetensors {
    /// Header size limit, as in the reference implementation (guards against garbage lengths).
    public static let maxHeaderBytes = 100_000_000

    // MARK: write

    /// Writes `tensors` as F32 with `metadata`, atomically: a temporary file in the same
    /// folder is written, fsync'ed and renamed over `url`, so readers never see a partial file.
    public static func write(_ tensors: [(String, Tensor)], metadata: [String: String] = [:], to url: URL) throws {
        let path = url.path
        var seen = Set<String>()
        for (name, _) in tensors {
            if name.isEmpty { throw SafetensorsError(path: path, "empty tensor name") }
            if name == "__metadata__" { throw SafetensorsError(path: path, tensor: name, "reserved name") }
            if !seen.insert(name).inserted { throw SafetensorsError(path: path, tensor: name, "name used twice") }
        }
        let header = try headerBytes(tensors, metadata: metadata, path: path)
        do {
            try atomicWrite(to: url) { out in
                var n = UInt64(header.count).littleEndian
                try withUnsafeBytes(of: &n) { try out.write($0.baseAddress!, $0.count) }
                try header.withUnsafeBytes { try out.write($0.baseAddress!, $0.count) }
                for (_, t) in tensors {
                    try writeFloatsLE(t.storage.ptr, t.count, out)
                }
            }
        } catch let e as FileError {
            throw SafetensorsError(path: path, e.message)
        }
    }

    /// JSON header, padded with spaces to a multiple of 8 bytes so the data stays aligned.
    static func headerBytes(_ tensors: [(String, Tensor)], metadata: [String: String], path: String) throws -> [UInt8] {
        var entries: [String: HeaderEntry] = [:]
        var offset = 0
        for (name, t) in tensors {
            let bytes = t.count * 4
            entries[name] = .tensor(TensorInfo(dtype: "F32", shape: t.shape, data_offsets: [offset, offset + bytes]))
            offset += bytes
        }
        if !metadata.isEmpty { entries["__metadata__"] = .metadata(metadata) }
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var bytes: [UInt8]
        do { bytes = Array(try enc.encode(entries)) } catch {
            throw SafetensorsError(path: path, "cannot encode header: \(error)")
        }
        while bytes.count % 8 != 0 { bytes.append(0x20) }
        return bytes
    }

    // MARK: read

    /// Reads and validates a whole file. Every inconsistency throws a `SafetensorsError`
    /// naming the file and the tensor.
    public static func read(_ url: URL) throws -> SafetensorsArchive {
        let path = url.path
        let data: Data
        do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
            throw SafetensorsError(path: path, "cannot read file: \(error.localizedDescription)")
        }
        return try data.withUnsafeBytes { raw in try parse(raw, path: path) }
    }

    /// Only the metadata (the data section is validated too, but not converted).
    public static func readMetadata(_ url: URL) throws -> [String: String] {
        let path = url.path
        let data: Data
        do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
            throw SafetensorsError(path: path, "cannot read file: \(error.localizedDescription)")
        }
        return try data.withUnsafeBytes { raw in try parseHeader(raw, path: path).metadata }
    }

    struct Parsed {
        var entries: [(name: String, dtype: SafetensorsDType, shape: [Int], begin: Int, end: Int)]
        var metadata: [String: String]
        var dataStart: Int
    }

    static func parseHeader(_ raw: UnsafeRawBufferPointer, path: String) throws -> Parsed {
        let size = raw.count
        guard size >= 8 else {
            throw SafetensorsError(path: path, "file too short: \(size) bytes (needs at least the 8-byte header length)")
        }
        var n64: UInt64 = 0
        for i in 0..<8 { n64 |= UInt64(raw[i]) << (8 * UInt64(i)) }
        // Some other file (text, PNG, a PyTorch pickle): its first bytes are no sensible length and
        // no JSON object follows them. Say so rather than quote a huge "header length".
        if (n64 > UInt64(size - 8) || n64 > UInt64(maxHeaderBytes)) && (size == 8 || raw[8] != UInt8(ascii: "{")) {
            throw SafetensorsError(path: path, "not a safetensors file (a safetensors file starts with an 8-byte header length and a JSON object; this one's first bytes read as a length of \(n64) in a \(size)-byte file)")
        }
        guard n64 <= UInt64(size - 8) else {
            throw SafetensorsError(path: path, "header length \(n64) exceeds the file size (\(size) bytes, \(size - 8) after the length field)")
        }
        guard n64 <= UInt64(maxHeaderBytes) else {
            throw SafetensorsError(path: path, "header length \(n64) exceeds the limit of \(maxHeaderBytes) bytes")
        }
        let n = Int(n64)
        let headerData = Data(raw[8..<(8 + n)])
        let header: Header
        do { header = try JSONDecoder().decode(Header.self, from: headerData) } catch let e as SafetensorsError {
            throw SafetensorsError(path: path, tensor: e.tensor, e.message)
        } catch {
            throw SafetensorsError(path: path, "invalid JSON header: \(describe(error))")
        }
        let dataSize = size - 8 - n
        var entries: [(name: String, dtype: SafetensorsDType, shape: [Int], begin: Int, end: Int)] = []
        for (name, info) in header.tensors {
            guard let dtype = SafetensorsDType(rawValue: info.dtype) else {
                throw SafetensorsError(path: path, tensor: name,
                                       "unknown dtype '\(info.dtype)' (supported: \(SafetensorsDType.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            if let bad = info.shape.first(where: { $0 < 0 }) {
                throw SafetensorsError(path: path, tensor: name, "negative dimension \(bad) in shape \(info.shape)")
            }
            guard info.data_offsets.count == 2 else {
                throw SafetensorsError(path: path, tensor: name, "data_offsets must be [begin, end], got \(info.data_offsets)")
            }
            let b = info.data_offsets[0], e = info.data_offsets[1]
            guard b >= 0, b <= e, e <= dataSize else {
                throw SafetensorsError(path: path, tensor: name,
                                       "data_offsets [\(b), \(e)] out of range (data section is \(dataSize) bytes\(e > dataSize && b <= e ? "; truncated file?" : ""))")
            }
            var elems = 1, overflow = false
            for d in info.shape {
                let r = elems.multipliedReportingOverflow(by: d)
                elems = r.partialValue; overflow = overflow || r.overflow
            }
            let r = elems.multipliedReportingOverflow(by: dtype.byteSize)
            guard !overflow, !r.overflow, r.partialValue == e - b else {
                throw SafetensorsError(path: path, tensor: name,
                                       "data_offsets [\(b), \(e)] span \(e - b) bytes, but shape \(info.shape) of \(dtype.rawValue) needs \(overflow || r.overflow ? "more than Int.max" : "\(r.partialValue)") bytes")
            }
            entries.append((name, dtype, info.shape, b, e))
        }
        entries.sort { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
        for i in entries.indices.dropFirst() where entries[i].begin < entries[i - 1].end {
            throw SafetensorsError(path: path, tensor: entries[i].name,
                                   "data_offsets [\(entries[i].begin), \(entries[i].end)] overlap tensor '\(entries[i - 1].name)' [\(entries[i - 1].begin), \(entries[i - 1].end)]")
        }
        return Parsed(entries: entries, metadata: header.metadata, dataStart: 8 + n)
    }

    static func parse(_ raw: UnsafeRawBufferPointer, path: String) throws -> SafetensorsArchive {
        let p = try parseHeader(raw, path: path)
        var archive = SafetensorsArchive(names: [], tensors: [:], dtypes: [:], metadata: p.metadata)
        for e in p.entries {
            let count = ShapeUtil.count(e.shape)
            let s = Storage(uninitializedCount: count)
            convert(raw.baseAddress! + p.dataStart + e.begin, dtype: e.dtype, count: count, into: s.ptr)
            archive.names.append(e.name)
            archive.tensors[e.name] = Tensor(shape: e.shape, storage: s)
            archive.dtypes[e.name] = e.dtype
        }
        return archive
    }

    /// Little-endian bytes of `dtype` to Float32 (byte loads: the data need not be aligned).
    static func convert(_ src: UnsafeRawPointer, dtype: SafetensorsDType, count: Int, into dst: UnsafeMutablePointer<Float>) {
        @inline(__always) func u16(_ i: Int) -> UInt16 { UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
        @inline(__always) func u32(_ i: Int) -> UInt32 { UInt32(littleEndian: src.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)) }
        @inline(__always) func u64(_ i: Int) -> UInt64 { UInt64(littleEndian: src.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)) }
        switch dtype {
        case .F32:
            #if _endian(little)
            UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: count * 4)
            #else
            for i in 0..<count { dst[i] = Float(bitPattern: u32(i)) }
            #endif
        case .F64: for i in 0..<count { dst[i] = Float(Double(bitPattern: u64(i))) }
        case .F16: for i in 0..<count { dst[i] = halfToFloat(u16(i)) }
        case .BF16: for i in 0..<count { dst[i] = Float(bitPattern: UInt32(u16(i)) << 16) }
        case .I64: for i in 0..<count { dst[i] = Float(Int64(bitPattern: u64(i))) }
        case .I32: for i in 0..<count { dst[i] = Float(Int32(bitPattern: u32(i))) }
        case .I16: for i in 0..<count { dst[i] = Float(Int16(bitPattern: u16(i))) }
        case .I8: for i in 0..<count { dst[i] = Float(src.load(fromByteOffset: i, as: Int8.self)) }
        case .U8: for i in 0..<count { dst[i] = Float(src.load(fromByteOffset: i, as: UInt8.self)) }
        case .BOOL: for i in 0..<count { dst[i] = src.load(fromByteOffset: i, as: UInt8.self) != 0 ? 1 : 0 }
        }
    }

    /// IEEE binary16 to Float32, including subnormals, infinities and NaN.
    static func halfToFloat(_ h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exp = Int(h >> 10) & 0x1F
        let frac = UInt32(h & 0x3FF)
        if exp == 0x1F { return Float(bitPattern: sign | 0x7F80_0000 | (frac << 13)) }
        if exp == 0 {
            // Subnormal (or zero): frac * 2^-24.
            let v = Float(frac) * Float(sign: .plus, exponent: -24, significand: 1)
            return sign != 0 ? -v : v
        }
        return Float(bitPattern: sign | (UInt32(exp - 15 + 127) << 23) | (frac << 13))
    }

    static func describe(_ error: Error) -> String {
        switch error {
        case let DecodingError.dataCorrupted(c): return c.debugDescription + underlying(c)
        case let DecodingError.typeMismatch(_, c), let DecodingError.valueNotFound(_, c):
            if c.codingPath.isEmpty { return "the header must be a JSON object (\(c.debugDescription))" }
            return "\(c.debugDescription) at \(c.codingPath.map(\.stringValue).joined(separator: "."))"
        case let DecodingError.keyNotFound(k, c):
            return "missing key '\(k.stringValue)' at \(c.codingPath.map(\.stringValue).joined(separator: "."))"
        default: return "\(error)"
        }
    }

    static func underlying(_ c: DecodingError.Context) -> String {
        guard let u = c.underlyingError else { return "" }
        return " (\(u.localizedDescription))"
    }
}

// MARK: - Header coding

struct TensorInfo: Codable {
    var dtype: String
    var shape: [Int]
    var data_offsets: [Int]
}

enum HeaderEntry: Encodable {
    case tensor(TensorInfo)
    case metadata([String: String])

    func encode(to encoder: Encoder) throws {
        switch self {
        case let .tensor(t): try t.encode(to: encoder)
        case let .metadata(m): try m.encode(to: encoder)
        }
    }
}

struct DynamicKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

/// The decoded header: tensor entries and metadata, each entry decoded on its own so an error
/// can name the tensor.
struct Header: Decodable {
    var tensors: [(String, TensorInfo)] = []
    var metadata: [String: String] = [:]

    init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: DynamicKey.self)
        for key in c.allKeys {
            if key.stringValue == "__metadata__" {
                do { metadata = try c.decode([String: String].self, forKey: key) } catch {
                    throw SafetensorsError(path: "", "__metadata__ must map strings to strings: \(Safetensors.describe(error))")
                }
                continue
            }
            do { tensors.append((key.stringValue, try c.decode(TensorInfo.self, forKey: key))) } catch {
                throw SafetensorsError(path: "", tensor: key.stringValue,
                                       "malformed entry (needs dtype, shape, data_offsets): \(Safetensors.describe(error))")
            }
        }
    }
}

/// Float32 values as little-endian bytes, in bounded pieces.
func writeFloatsLE(_ p: UnsafePointer<Float>, _ count: Int, _ out: FileSink) throws {
    #if _endian(little)
    try out.write(UnsafeRawPointer(p), count * 4)
    #else
    var buf = [UInt32](repeating: 0, count: 4096)
    var i = 0
    while i < count {
        let n = min(4096, count - i)
        for j in 0..<n { buf[j] = p[i + j].bitPattern.littleEndian }
        try buf.withUnsafeBytes { try out.write($0.baseAddress!, n * 4) }
        i += n
    }
    #endif
}
