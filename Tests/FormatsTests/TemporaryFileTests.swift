import Foundation
import XCTest
import Autograd
import Formats
import TensorCore
import TestSupport

/// atomicWrite's temporaries never outlive their write: SIGINT/SIGTERM abandon it cleanly,
/// and those of writers killed with SIGKILL are removed by the next run.
final class TemporaryFileTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try makeTempDir("tmpfiles") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func names() throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() }

    /// The child (this test binary re-run on `testSignalChild`) starts rewriting `file.bin`
    /// and blocks mid-write; the signal must leave the old file and no temporary, and end the
    /// process by that signal.
    func testSignalAbandonsTheWriteCleanly() throws {
        for sig in [SIGTERM, SIGINT] {
            let target = dir.appendingPathComponent("file.bin")
            try Data("old".utf8).write(to: target)
            let p = Process()
            p.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
            p.arguments = ["FormatsTests.TemporaryFileTests/testSignalChild"]
            var env = ProcessInfo.processInfo.environment
            env["REFLOW_SIGNAL_CHILD"] = target.path
            p.environment = env
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            let deadline = Date().addingTimeInterval(20)
            while try !names().contains(where: { $0.contains(".tmp-") }) && Date() < deadline && p.isRunning { usleep(2000) }
            XCTAssertTrue(try names().contains(where: { $0.contains(".tmp-") }), "the child never started its write")
            kill(p.processIdentifier, sig)
            p.waitUntilExit()
            XCTAssertEqual(p.terminationReason, .uncaughtSignal, "signal \(sig)")
            XCTAssertEqual(p.terminationStatus, sig)
            XCTAssertEqual(try names(), ["file.bin"], "signal \(sig)")
            XCTAssertEqual(try Data(contentsOf: target), Data("old".utf8))
        }
    }

    func testSignalChild() throws {
        guard let path = ProcessInfo.processInfo.environment["REFLOW_SIGNAL_CHILD"] else {
            throw XCTSkip("child half of testSignalAbandonsTheWriteCleanly")
        }
        try atomicWrite(to: URL(fileURLWithPath: path)) { out in
            try out.write(Data(repeating: 7, count: 1000))
            while true { usleep(100_000) }  // a long write, interrupted by the parent's signal
        }
    }

    func testStaleTemporariesOfDeadWritersAreRemoved() throws {
        let dead = Process()
        dead.executableURL = URL(fileURLWithPath: "/bin/true")
        try dead.run()
        dead.waitUntilExit()
        let stale = ".ckpt.safetensors.tmp-\(dead.processIdentifier)-12345"
        let mine = ".ckpt.safetensors.tmp-\(getpid())-7"
        let live = ".other.png.tmp-1-99"  // PID 1 is alive
        for n in [stale, mine, live, "keep.tmp-5-5", ".no.tmp-x-1"] {
            try Data().write(to: dir.appendingPathComponent(n))
        }
        XCTAssertEqual(removeStaleTemporaries(in: dir.path), [stale])
        XCTAssertEqual(try names(), [".no.tmp-x-1", mine, live, "keep.tmp-5-5"].sorted())
        XCTAssertEqual(removeStaleTemporaries(in: dir.path + "/missing"), [])
    }

    /// The checksum's cost, measured (printed): it is computed on every write and read.
    func testChecksumThroughput() throws {
        let count = 8 << 20  // 32 MB of Float32
        let t = Tensor(shape: [count], storage: Storage(zeros: count))
        let url = dir.appendingPathComponent("big.safetensors")
        let clock = Date()
        try Safetensors.write([("w", t)], metadata: ["k": "v"], requireFinite: true, to: url)
        let w = Date().timeIntervalSince(clock)
        let clock2 = Date()
        let back = try Safetensors.read(url)
        let r = Date().timeIntervalSince(clock2)
        XCTAssertTrue(back.checksumVerified)
        print("checksum throughput: write 32 MB in \(String(format: "%.3f", w)) s, read+verify in \(String(format: "%.3f", r)) s")
    }
}
