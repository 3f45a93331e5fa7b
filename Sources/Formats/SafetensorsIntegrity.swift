import Foundation
import Autograd
import TensorCore

// Integrity of our safetensors files: a content checksum in the metadata, and finiteness of the
// values. The checksum lets a damaged file (bit flips, zeroed blocks) be refused instead of
// loading and sampling garbage; files from Python carry none and load without the check.

extension Safetensors {
    /// Metadata key of the content checksum: lower-case hex SHA-256 over
    /// 1. the data section (every byte after the header), then
    /// 2. per tensor, sorted by name: name, dtype, shape (decimal, comma-separated), begin, end,
    /// 3. per metadata entry except this one, sorted by key: key, value,
    /// each field of 2 and 3 as UTF-8 followed by one 0x00 byte. Header whitespace and key order
    /// are not covered (they carry no meaning). Cost: ~0.2 s per 32 MB written or read on this
    /// machine (testChecksumThroughput prints it), small beside the training between checkpoints.
    public static let checksumKey = "content_sha256"

    /// A key of the checksum's length differing from it in one or two bytes.
    static func nearChecksumKey(_ key: String) -> Bool {
        let a = Array(key.utf8), b = Array(checksumKey.utf8)
        return a.count == b.count && zip(a, b).filter { $0 != $1 }.count <= 2
    }

    /// The checksum of tensors about to be written as F32 (data section = their bytes in order).
    static func contentDigest(of tensors: [(String, Tensor)], metadata: [String: String]) -> String {
        var h = SHA256()
        var descriptors: [(String, String, [Int], Int, Int)] = []
        var offset = 0
        for (name, t) in tensors {
            let bytes = t.count * 4
            #if _endian(little)
            h.update(UnsafeRawBufferPointer(start: t.storage.ptr, count: bytes))
            #else
            for i in 0..<t.count { var v = t.storage.ptr[i].bitPattern.littleEndian; withUnsafeBytes(of: &v) { h.update($0) } }
            #endif
            descriptors.append((name, "F32", t.shape, offset, offset + bytes))
            offset += bytes
        }
        return finishDigest(&h, descriptors, metadata)
    }

    /// The checksum of a parsed file (its metadata without the checksum itself).
    static func contentDigest(of p: Parsed, raw: UnsafeRawBufferPointer) -> String {
        var h = SHA256()
        h.update(UnsafeRawBufferPointer(rebasing: raw[p.dataStart...]))
        return finishDigest(&h, p.entries.map { ($0.name, $0.dtype.rawValue, $0.shape, $0.begin, $0.end) }, p.metadata)
    }

    private static func finishDigest(_ h: inout SHA256, _ descriptors: [(String, String, [Int], Int, Int)],
                                     _ metadata: [String: String]) -> String {
        var fields = Data()
        func field(_ s: String) { fields.append(contentsOf: Array(s.utf8)); fields.append(0) }
        for (name, dtype, shape, b, e) in descriptors.sorted(by: { Array($0.0.utf8).lexicographicallyPrecedes(Array($1.0.utf8)) }) {
            field(name); field(dtype); field(shape.map(String.init).joined(separator: ",")); field("\(b)"); field("\(e)")
        }
        for k in metadata.keys.sorted(by: { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }) where k != checksumKey {
            field(k); field(metadata[k]!)
        }
        h.update(fields)
        return h.finalizeHex()
    }

    /// Throws, naming the file, the tensor and the first bad element, when `p[0..<count]` holds a
    /// NaN or an infinity.
    static func checkFinite(_ p: UnsafePointer<Float>, _ count: Int, shape: [Int], tensor: String, path: String,
                            writing: Bool) throws {
        guard let i = firstNonFinite(p, count) else { return }
        let what = writing ? "refusing to write" : "holds"
        throw SafetensorsError(path: path, tensor: tensor,
                               "\(what) a non-finite value (\(p[i]) at flat index \(i) of shape \(shape))")
    }

    /// Index of the first NaN or infinity. The scan keeps the largest exponent field seen per
    /// block (a max over UInt32 lanes vectorizes) and looks for the index only in a bad block.
    public static func firstNonFinite(_ p: UnsafePointer<Float>, _ count: Int) -> Int? {
        let bits = UnsafeRawPointer(p).assumingMemoryBound(to: UInt32.self)
        let block = 4096
        var start = 0
        while start < count {
            let end = Swift.min(count, start + block)
            var top: UInt32 = 0
            for i in start..<end { top = Swift.max(top, bits[i] & 0x7F80_0000) }
            if top == 0x7F80_0000 {
                for i in start..<end where bits[i] & 0x7F80_0000 == 0x7F80_0000 { return i }
            }
            start = end
        }
        return nil
    }
}

extension SafetensorsArchive {
    /// Throws a `SafetensorsError` naming `path` and the tensor when any value is NaN or infinite
    /// (checkpoint loaders call this: no garbage reaches a model, whatever wrote the file).
    public func checkFinite(path: String) throws {
        for name in names {
            let t = tensors[name]!
            try Safetensors.checkFinite(t.storage.ptr, t.count, shape: t.shape, tensor: name, path: path, writing: false)
        }
    }
}
