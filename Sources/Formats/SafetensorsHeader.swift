import Foundation

// The safetensors header: its parsing and validation. Everything here reads bytes from a file
// that may be damaged or crafted: every size or offset is checked before use, with checked
// arithmetic (release builds use -Ounchecked, where an overflow would be silent).

extension Safetensors {
    struct Parsed {
        var entries: [(name: String, dtype: SafetensorsDType, shape: [Int], begin: Int, end: Int)]
        /// Without the checksum, which is `checksum`.
        var metadata: [String: String]
        var checksum: String?
        var dataStart: Int
    }

    /// Dimensions a tensor may have (PyTorch's own limit): a crafted shape of a million zero-length
    /// axes would otherwise pass the size checks.
    static let maxRank = 64

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
            guard info.shape.count <= maxRank else {
                throw SafetensorsError(path: path, tensor: name, "shape has \(info.shape.count) dimensions (at most \(maxRank))")
            }
            // Zero-length axes make the byte count 0 whatever the others say; the others must still
            // multiply without overflow, since strides are computed from them.
            var span = 1
            for d in info.shape where d > 0 {
                let r = span.multipliedReportingOverflow(by: d)
                guard !r.overflow else {
                    throw SafetensorsError(path: path, tensor: name, "shape \(info.shape) has more than Int.max elements")
                }
                span = r.partialValue
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
        var names = Set<String>()
        for e in entries where !names.insert(e.name).inserted {
            throw SafetensorsError(path: path, tensor: e.name, "the header names this tensor twice")
        }
        entries.sort { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
        for i in entries.indices.dropFirst() where entries[i].begin < entries[i - 1].end {
            throw SafetensorsError(path: path, tensor: entries[i].name,
                                   "data_offsets [\(entries[i].begin), \(entries[i].end)] overlap tensor '\(entries[i - 1].name)' [\(entries[i - 1].begin), \(entries[i - 1].end)]")
        }
        var metadata = header.metadata
        let checksum = metadata.removeValue(forKey: checksumKey)
        // A bit flip in the key's own name would turn a checked file into an unchecked one.
        if checksum == nil, let near = metadata.keys.first(where: { nearChecksumKey($0) }) {
            throw SafetensorsError(path: path, "damaged file: metadata key '\(near)' is a damaged '\(checksumKey)'")
        }
        return Parsed(entries: entries, metadata: metadata, checksum: checksum, dataStart: 8 + n)
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

