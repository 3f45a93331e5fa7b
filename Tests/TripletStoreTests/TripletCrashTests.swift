import CHDF5
import TripletStore
import Formats
import Foundation
import TensorCore
import XCTest
import TestSupport

/// Kill -9 of a writer: the file opens with whole rows and resumes (fixtures in TripletStoreTests.swift).
final class TripletCrashTests: TripletTestCase {
    /// A writer killed with SIGKILL mid-run leaves a file that opens and holds only complete rows;
    /// a resumed writer continues from there. The child is this test binary re-run on
    /// `testCrashChild`, which writes batches until killed.
    func testKill9LeavesReadableFile() throws {
        let path = dir + "/crash.h5"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        p.arguments = ["TripletStoreTests.TripletCrashTests/testCrashChild"]
        var env = ProcessInfo.processInfo.environment
        env["REFLOW_TRIPLET_CRASH_CHILD"] = path
        p.environment = env
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        // Kill once the child has committed a few batches (it prints "committed N" after each).
        var seen = ""
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            seen += String(decoding: chunk, as: UTF8.self)
            if seen.components(separatedBy: "committed ").count > 6 { break }
        }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationReason, .uncaughtSignal)
        let lastPrinted = seen.components(separatedBy: "committed ").dropFirst()
            .compactMap { Int($0.prefix(while: { $0.isNumber })) }.max() ?? 0
        XCTAssertGreaterThanOrEqual(lastPrinted, 8)

        let r = try TripletReader(path: path)
        XCTAssertGreaterThanOrEqual(r.count, lastPrinted)
        XCTAssertEqual(r.count % 4, 0)  // whole chunks only
        Rows.check(try r.read(0..<r.count), Array(0..<r.count))
        let committed = r.count
        r.close()
        let w = try TripletWriter(path: path, itemShape: Rows.shape, attributes: attrs, mode: .createOrAppend)
        XCTAssertEqual(w.count, committed)
        try Rows.append(w, committed..<(committed + 3))
        try w.close()
        Rows.check(try TripletReader(path: path).read(0..<(committed + 3)), Array(0..<(committed + 3)))
    }

    /// Opt-in stress version (REFLOW_KILL_STRESS=<files>, about 0.5 s per file): each file gets
    /// three writers killed at random moments, resuming after each kill.
    func testKill9Stress() throws {
        guard let n = ProcessInfo.processInfo.environment["REFLOW_KILL_STRESS"].flatMap({ Int($0) }) else {
            throw XCTSkip("set REFLOW_KILL_STRESS=<number of files> to run")
        }
        var kills = 0
        for k in 0..<n {
            let path = dir + "/stress-\(k).h5"
            for _ in 0..<3 {
                let p = Process()
                p.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
                p.arguments = ["TripletStoreTests.TripletCrashTests/testCrashChild"]
                var env = ProcessInfo.processInfo.environment
                env["REFLOW_TRIPLET_CRASH_CHILD"] = path
                p.environment = env
                p.standardOutput = FileHandle.nullDevice
                p.standardError = FileHandle.nullDevice
                try p.run()
                usleep(UInt32.random(in: 20_000...150_000))
                kill(p.processIdentifier, SIGKILL)
                p.waitUntilExit()
                guard FileManager.default.fileExists(atPath: path) else { continue }  // killed before creating it
                kills += 1
                let r = try TripletReader(path: path)
                XCTAssertEqual(r.count % 4, 0)
                Rows.check(try r.read(0..<r.count), Array(0..<r.count))
                r.close()
            }
            unlink(path)
        }
        print("testKill9Stress: \(kills) kills checked")
    }

    func testCrashChild() throws {
        guard let path = ProcessInfo.processInfo.environment["REFLOW_TRIPLET_CRASH_CHILD"] else {
            throw XCTSkip("child half of testKill9LeavesReadableFile")
        }
        let w = try TripletWriter(path: path, itemShape: Rows.shape, attributes: attrs, mode: .createOrAppend, rowsPerChunk: 4)
        var i = w.count
        while true {
            try Rows.append(w, i..<(i + 3))
            i += 3
            print("committed \(w.committedCount)")
            fflush(stdout)
        }
    }
}
