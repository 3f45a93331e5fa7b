import CZlib
import Foundation
import Formats

/// Whole-file reads, gzip-aware. zlib's gz* functions read plain files unchanged, so the same
/// call serves `digits.csv.gz` and an uncompressed copy.
enum FileBytes {
    /// The (decompressed) bytes of `path`. `expectedSize` pre-sizes the buffer when known.
    static func read(_ path: String, expectedSize: Int? = nil) throws -> [UInt8] {
        guard FileManager.default.fileExists(atPath: path) else {
            throw DataError("\(path): no such file")
        }
        guard let gz = gzopen(path, "rb") else {
            throw DataError("\(path): cannot open (\(String(cString: strerror(errno))))")
        }
        defer { gzclose(gz) }
        gzbuffer(gz, 1 << 20)
        var out = [UInt8]()
        out.reserveCapacity(expectedSize ?? (1 << 20))
        let block = 1 << 22
        var scratch = [UInt8](repeating: 0, count: block)
        while true {
            let n = scratch.withUnsafeMutableBytes { gzread(gz, $0.baseAddress, UInt32(block)) }
            if n < 0 {
                var code: Int32 = 0
                let msg = gzerror(gz, &code).map { String(cString: $0) } ?? "unknown zlib error"
                throw DataError("\(path): corrupt gzip data (\(msg))")
            }
            if n == 0 { break }
            out.append(contentsOf: scratch[0..<Int(n)])
        }
        // A truncated stream ends reads early with Z_BUF_ERROR ("unexpected end of file").
        var code: Int32 = 0
        let msg = gzerror(gz, &code).map { String(cString: $0) } ?? ""
        if code != Z_OK && code != Z_STREAM_END {
            throw DataError("\(path): corrupt or truncated gzip data (\(msg))")
        }
        return out
    }
}
