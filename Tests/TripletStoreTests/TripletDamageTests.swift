import CHDF5
import TripletStore
import Formats
import Foundation
import TensorCore
import XCTest
import TestSupport

/// Damaged triplet files through both readers: the training reader (`TripletReader` opened and
/// read whole, what `TripletSource` does for `reflow-train --stage reflow`) and a resuming writer
/// (`TripletWriter(.createOrAppend)`, what `reflow-gen-pairs` does when it continues a file).
/// Each damaged file must end in a read bit-identical to the original (the damage hit unused
/// bytes) or an error naming the file: no crash, no hang, no corruption accepted in silence.
/// Reads run in a child process (this test binary re-run on `testDamageChild`), so a crash is
/// counted instead of killing the runner. REFLOW_DAMAGE_FILES=500 runs 500 files (default 40).
final class TripletDamageTests: TripletTestCase {
    // Enough rows that row data, not the unused part of the first /text and /checksum chunks
    // (1024 rows each), fill most of the file: damage there is mostly damage that matters.
    static let rows = 600, total = 613
    static let childTest = "TripletStoreTests.TripletDamageTests/testDamageChild"

    func testDamagedFilesNeverCrashOrHang() throws {
        let env = ProcessInfo.processInfo.environment
        let n = env["REFLOW_DAMAGE_FILES"].flatMap { Int($0) } ?? 40
        // REFLOW_DAMAGE_FIRST=k starts at file k (to replay one file: REFLOW_DAMAGE_FILES=1).
        let first = env["REFLOW_DAMAGE_FIRST"].flatMap { UInt64($0) } ?? 0
        let original = dir + "/original.h5"
        let w = try TripletWriter(path: original, itemShape: Rows.shape, attributes: attrs, rowsPerChunk: 16, textBytes: 32)
        try Rows.append(w, 0..<Self.rows)
        try w.close()
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: original)))
        let chunks = HDF5Fixture.chunkRegions(original)
        XCTAssertGreaterThan(chunks.count, 10)
        var kinds = [String]()
        for k in 0..<n {
            let (kind, damaged) = Damage.make(bytes, chunks: chunks, seed: first + UInt64(k))
            kinds.append(kind)
            for mode in Mode.allCases {
                try Data(damaged).write(to: URL(fileURLWithPath: dir + "/\(k)-\(mode).h5"))
            }
            if env["REFLOW_DAMAGE_KEEP"] != nil {
                try Data(damaged).write(to: URL(fileURLWithPath: NSTemporaryDirectory() + "damaged-\(first + UInt64(k)).h5"))
            }
        }
        for mode in Mode.allCases {
            let results = runChildren(mode: mode, count: n)
            var counts = [Outcome: Int]()
            for r in results { counts[r.outcome, default: 0] += 1 }
            let line = Outcome.allCases.map { "\($0.rawValue) \(counts[$0] ?? 0)" }.joined(separator: ", ")
            print("damage harness (\(mode.rawValue)): \(n) files: \(line)")
            // Per kind of damage (before the colon): files, and how many read identical.
            var byKind = [String: (files: Int, identical: Int)]()
            for (k, r) in results.enumerated() {
                let kind = String(kinds[k].prefix { $0 != ":" })
                byKind[kind, default: (0, 0)].files += 1
                if r.outcome == .identical { byKind[kind, default: (0, 0)].identical += 1 }
            }
            print("  by kind (files / identical reads): " + byKind.sorted { $0.key < $1.key }
                .map { "\($0.key) \($0.value.files) / \($0.value.identical)" }.joined(separator: "; "))
            for (k, r) in results.enumerated() where !r.outcome.isGood {
                XCTFail("\(mode.rawValue) of damaged file \(first + UInt64(k)) (\(kinds[k])): \(r.outcome.rawValue): \(r.message)")
            }
            XCTAssertEqual(results.count, n)
        }
    }

    enum Mode: String, CaseIterable { case read = "training reader", resume = "resuming writer" }

    enum Outcome: String, CaseIterable {
        case identical = "identical read", error = "clean error", crash, hang, silent = "silently accepted", unnamed = "error naming no file"
        var isGood: Bool { self == .identical || self == .error }
    }

    /// Runs the child over files 0..<count, restarting it after the file it crashed or hung on.
    private func runChildren(mode: Mode, count: Int) -> [(outcome: Outcome, message: String)] {
        var results = [(outcome: Outcome, message: String)]()
        while results.count < count {
            let first = results.count
            let p = Process()
            p.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
            p.arguments = [Self.childTest]
            var env = ProcessInfo.processInfo.environment
            env["REFLOW_DAMAGE_CHILD"] = "\(dir)|\(mode == .read ? "read" : "resume")|\(first)|\(count)"
            p.environment = env
            let out = Pipe()
            p.standardOutput = out
            p.standardError = FileHandle.nullDevice
            let lines = LineReader(out.fileHandleForReading)
            guard (try? p.run()) != nil else { return results + [(.crash, "cannot start the child")] }
            // Generous for the first file (the child starts up), then a few seconds a file.
            var deadline = Date().addingTimeInterval(30)
            var stopped = false
            while results.count < count && !stopped {
                if let line = lines.next(until: deadline) {
                    guard line.hasPrefix("RESULT ") else { continue }
                    let parts = line.dropFirst(7).split(separator: " ", maxSplits: 2).map(String.init)
                    guard parts.count >= 2, Int(parts[0]) == results.count, let o = Outcome(rawValue: parts[1].replacingOccurrences(of: "_", with: " ")) else {
                        results.append((.unnamed, "malformed child line: \(line)")); stopped = true; break
                    }
                    results.append((o, parts.count > 2 ? parts[2] : ""))
                    deadline = Date().addingTimeInterval(10)
                } else if lines.closed {
                    p.waitUntilExit()
                    if results.count < count {
                        results.append((.crash, "child ended with \(p.terminationReason == .uncaughtSignal ? "signal" : "status") \(p.terminationStatus)"))
                    }
                    stopped = true
                } else {
                    kill(p.processIdentifier, SIGKILL)
                    p.waitUntilExit()
                    results.append((.hang, "no result within 10 s"))
                    stopped = true
                }
            }
            if p.isRunning { p.waitUntilExit() }
        }
        return results
    }

    /// The child: evaluates files from..<to in `dir`, one "RESULT k outcome message" line each.
    func testDamageChild() throws {
        guard let spec = ProcessInfo.processInfo.environment["REFLOW_DAMAGE_CHILD"] else {
            throw XCTSkip("child half of testDamagedFilesNeverCrashOrHang")
        }
        let f = spec.split(separator: "|").map(String.init)
        let (folder, mode, from, to) = (f[0], f[1], Int(f[2])!, Int(f[3])!)
        for k in from..<to {
            let path = folder + "/\(k)-\(mode == "read" ? Mode.read : Mode.resume).h5"
            let (o, msg) = mode == "read" ? evaluateRead(path) : evaluateResume(path)
            print("RESULT \(k) \(o.rawValue.replacingOccurrences(of: " ", with: "_")) \(msg.replacingOccurrences(of: "\n", with: " "))")
            fflush(stdout)
        }
    }

    /// Whether `path` holds exactly rows 0..<rows of `Rows` and the original attributes.
    private func same(_ path: String, rows: Int) throws -> String? {
        let r = try TripletReader(path: path)
        defer { r.close() }
        let b = try r.read(0..<r.count)
        guard r.count == rows else { return "holds \(r.count) rows, not \(rows)" }
        guard r.writerAttributes == attrs, r.attributes.count == attrs.count + 3 else { return "attributes differ" }
        guard b.texts == (0..<rows).map(Rows.text) else { return "texts differ" }
        for i in 0..<rows {
            for j in 0..<Rows.size {
                let (x0, x1) = (b.noise.ptr[i * Rows.size + j], b.images.ptr[i * Rows.size + j])
                if x0.bitPattern != Rows.noise(i, j).bitPattern || x1.bitPattern != Rows.image(i, j).bitPattern {
                    return "row \(i) differs"
                }
            }
        }
        return nil
    }

    private func classify(_ error: Error, _ path: String) -> (Outcome, String) {
        ("\(error)".contains(path) ? .error : .unnamed, "\(error)")
    }

    private func evaluateRead(_ path: String) -> (Outcome, String) {
        do {
            if let diff = try same(path, rows: Self.rows) { return (.silent, diff) }
            return (.identical, "")
        } catch { return classify(error, path) }
    }

    private func evaluateResume(_ path: String) -> (Outcome, String) {
        do {
            let w = try TripletWriter(path: path, itemShape: Rows.shape, attributes: attrs, mode: .createOrAppend)
            guard w.count <= Self.total else { try? w.close(); return (.silent, "resumed at row \(w.count)") }
            try Rows.append(w, w.count..<Self.total)
            try w.close()
        } catch { return classify(error, path) }
        // The writer accepted the file: it must now hold exactly the whole job.
        do {
            if let diff = try same(path, rows: Self.total) { return (.silent, "after resuming: " + diff) }
            return (.identical, "")
        } catch { return (.silent, "resumed, then unreadable: \(error)") }
    }
}

/// Seeded, reproducible damage: the kind and the damaged bytes of file `seed`.
enum Damage {
    static func make(_ original: [UInt8], chunks: [Range<Int>], seed: UInt64) -> (String, [UInt8]) {
        var g = RNG(seed: 0xDA3A_6E00 &+ seed)
        var b = original
        let n = b.count
        func randomBytes(_ at: Int, _ len: Int) {
            for i in at..<min(n, at + len) { b[i] = UInt8(truncatingIfNeeded: g.int(below: 256)) }
        }
        switch g.int(below: 6) {
        case 0:
            let flips = 1 + g.int(below: 8)
            for _ in 0..<flips { let i = g.int(below: n); b[i] ^= UInt8(1 << g.int(below: 8)) }
            return ("bit flips: \(flips)", b)
        case 1:
            let at = g.int(below: n), len = 1 + g.int(below: 512)
            for i in at..<min(n, at + len) { b[i] = 0 }
            return ("zeroed block: \(len) bytes at \(at)", b)
        case 2:
            let len = g.int(below: n)
            return ("truncation: \(len) bytes kept", Array(b[0..<len]))
        case 3:
            let at = g.int(below: min(n, 2048)), len = 1 + g.int(below: 64)
            randomBytes(at, len)
            return ("random bytes in the header: \(len) at \(at)", b)
        case 4:
            let c = chunks[g.int(below: chunks.count)]
            let at = c.lowerBound + g.int(below: c.count), len = 1 + g.int(below: 32)
            randomBytes(at, len)
            return ("random bytes in a chunk: \(len) at \(at)", b)
        default:
            // Metadata outside the chunks: object headers, B-trees, the root group's local heap.
            var at = g.int(below: n)
            while chunks.contains(where: { $0.contains(at) }) { at = g.int(below: n) }
            let len = 1 + g.int(below: 16)
            randomBytes(at, len)
            return ("random bytes in metadata: \(len) at \(at)", b)
        }
    }
}

/// Lines from a pipe, waited for with a deadline.
final class LineReader: @unchecked Sendable {
    private let lock = NSCondition()
    private var buffer = "", done = false
    var closed: Bool { lock.lock(); defer { lock.unlock() }; return done && !buffer.contains("\n") }

    init(_ h: FileHandle) {
        h.readabilityHandler = { [weak self] h in
            let d = h.availableData
            guard let self else { return }
            self.lock.lock()
            if d.isEmpty { self.done = true; h.readabilityHandler = nil } else { self.buffer += String(decoding: d, as: UTF8.self) }
            self.lock.broadcast()
            self.lock.unlock()
        }
    }

    /// The next line, or nil at the deadline or when the pipe closed without one.
    func next(until deadline: Date) -> String? {
        lock.lock()
        defer { lock.unlock() }
        while true {
            if let nl = buffer.firstIndex(of: "\n") {
                let line = String(buffer[..<nl])
                buffer.removeSubrange(...nl)
                return line
            }
            if done || !lock.wait(until: deadline) { return nil }
        }
    }
}
