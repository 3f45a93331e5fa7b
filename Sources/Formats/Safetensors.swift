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
    /// True when the file carried `content_sha256` and it matched.
    public var checksumVerified = false

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
    /// The metadata gains `content_sha256` (see `checksumKey`), which `read` verifies. With
    /// `requireFinite` (checkpoints), a NaN or infinite value is refused before anything is written.
    public static func write(_ tensors: [(String, Tensor)], metadata: [String: String] = [:], requireFinite: Bool = false,
                             to url: URL) throws {
        let path = url.path
        var seen = Set<String>()
        for (name, t) in tensors {
            if name.isEmpty { throw SafetensorsError(path: path, "empty tensor name") }
            if name == "__metadata__" { throw SafetensorsError(path: path, tensor: name, "reserved name") }
            if !seen.insert(name).inserted { throw SafetensorsError(path: path, tensor: name, "name used twice") }
            if requireFinite { try checkFinite(t.storage.ptr, t.count, shape: t.shape, tensor: name, path: path, writing: true) }
        }
        var meta = metadata
        meta[checksumKey] = contentDigest(of: tensors, metadata: metadata)
        let header = try headerBytes(tensors, metadata: meta, path: path)
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
    /// The content checksum (`content_sha256`) is verified when the file has one (files written
    /// by Python's safetensors have none) and removed from the returned metadata.
    public static func read(_ url: URL) throws -> SafetensorsArchive {
        let path = url.path
        let data: Data
        do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
            throw SafetensorsError(path: path, "cannot read file: \(error.localizedDescription)")
        }
        return try data.withUnsafeBytes { raw in try parse(raw, path: path) }
    }

    /// Only the metadata (offsets are validated against the data section, but the data is
    /// neither converted nor checksummed: a full `read` does that).
    public static func readMetadata(_ url: URL) throws -> [String: String] {
        let path = url.path
        let data: Data
        do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
            throw SafetensorsError(path: path, "cannot read file: \(error.localizedDescription)")
        }
        return try data.withUnsafeBytes { raw in try parseHeader(raw, path: path).metadata }
    }

    static func parse(_ raw: UnsafeRawBufferPointer, path: String) throws -> SafetensorsArchive {
        let p = try parseHeader(raw, path: path)
        if let expected = p.checksum {
            let actual = contentDigest(of: p, raw: raw)
            guard actual == expected else {
                throw SafetensorsError(path: path, "damaged file: its tensors and metadata hash to \(actual), but its \(checksumKey) says \(expected)")
            }
        }
        var archive = SafetensorsArchive(names: [], tensors: [:], dtypes: [:], metadata: p.metadata)
        archive.checksumVerified = p.checksum != nil
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
