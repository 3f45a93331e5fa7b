import Foundation

/// The SHA-256 of `base` and of the checkpoints it was trained from, following each file's
/// `init_from` / `init_sha256` metadata (the 2-RF starts from the teacher, the student from the
/// 2-RF). A recorded path that no longer exists is looked up beside `base`.
public func checkpointLineage(_ base: URL, depth: Int = 8) throws -> [(path: String, sha256: String)] {
    var out: [(String, String)] = [(base.path, try SHA256.hex(file: base.path))]
    var current = base
    for _ in 0..<depth {
        let meta = try Safetensors.readMetadata(current)
        guard let sha = meta["init_sha256"] else { break }
        let recorded = meta["init_from"] ?? "?"
        out.append((recorded, sha))
        let beside = base.deletingLastPathComponent().appendingPathComponent(URL(fileURLWithPath: recorded).lastPathComponent)
        guard let next = [URL(fileURLWithPath: recorded), beside].first(where: { FileManager.default.fileExists(atPath: $0.path) }),
              (try? SHA256.hex(file: next.path)) == sha else { break }
        current = next
    }
    return out
}
