import CHDF5
import TripletStore
import Formats
import Foundation
import TensorCore
import XCTest
import TestSupport

/// A full disk mid-write: the writer's error names the file, the process exits 1 as the tools do
/// (HDF5's exit handler used to crash it with SIGSEGV after a failed close), and the committed
/// rows survive and resume. The "disk" is RLIMIT_FSIZE in a child process with SIGXFSZ ignored,
/// so writes past the limit fail with EFBIG: no root, no tmpfs needed.
final class TripletDiskTests: TripletTestCase {
    static let childTest = "TripletStoreTests.TripletDiskTests/testDiskFullChild"

    func testDiskFullIsACleanErrorAndResumes() throws {
        let path = dir + "/full.h5"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
        p.arguments = [Self.childTest]
        var env = ProcessInfo.processInfo.environment
        env["REFLOW_TRIPLET_DISKFULL_CHILD"] = path
        p.environment = env
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationReason, .exit, "child died of signal \(p.terminationStatus)\n\(text)")
        XCTAssertEqual(p.terminationStatus, 1, text)
        let error = try XCTUnwrap(text.components(separatedBy: "ERROR: ").dropFirst().first, text)
        XCTAssertTrue(error.hasPrefix(path), error)
        let committed = text.components(separatedBy: "committed ").dropFirst()
            .compactMap { Int($0.prefix(while: { $0.isNumber })) }.max() ?? 0
        XCTAssertGreaterThanOrEqual(committed, 40, "the limit was hit too early to test resuming")

        // Under a file size limit (unlike a full disk) the writer cannot even grow the file
        // sparsely, so its last failed flush can leave it shorter than recorded: readers say so,
        // and the resuming writer repairs it.
        if (try? TripletReader(path: path)) == nil {
            XCTAssertThrowsError(try TripletReader(path: path)) { e in
                XCTAssertTrue("\(e)".contains(path) && "\(e)".contains("re-run that command"), "\(e)")
            }
            try TripletWriter(path: path, itemShape: Rows.shape, attributes: attrs, mode: .createOrAppend).close()
        }
        let r = try TripletReader(path: path)
        XCTAssertGreaterThanOrEqual(r.count, committed)
        Rows.check(try r.read(0..<r.count), Array(0..<r.count))
        let n = r.count
        r.close()
        let w = try TripletWriter(path: path, itemShape: Rows.shape, attributes: attrs, mode: .createOrAppend)
        XCTAssertEqual(w.count, n)
        try Rows.append(w, n..<(n + 50))
        try w.close()
        Rows.check(try TripletReader(path: path).read(0..<(n + 50)), Array(0..<(n + 50)))
    }

    func testDiskFullChild() throws {
        guard let path = ProcessInfo.processInfo.environment["REFLOW_TRIPLET_DISKFULL_CHILD"] else {
            throw XCTSkip("child half of testDiskFullIsACleanErrorAndResumes")
        }
        signal(SIGXFSZ, SIG_IGN)
        var limit = rlimit(rlim_cur: 150_000, rlim_max: 150_000)
        guard setrlimit(__rlimit_resource_t(RLIMIT_FSIZE.rawValue), &limit) == 0 else { return XCTFail("setrlimit failed") }
        var w: TripletWriter? = nil
        do {
            // Uncompressed, so that the file grows with every commit.
            w = try TripletWriter(path: path, itemShape: Rows.shape, attributes: attrs, mode: .createOrAppend,
                                  rowsPerChunk: 4, compression: 0, textBytes: 32)
            var i = 0
            while i < 100_000 {
                try Rows.append(w!, i..<(i + 3))
                i += 3
                print("committed \(w!.committedCount)")
            }
            XCTFail("the file size limit was never hit")
        } catch {
            // What a tool does: close (which fails again), report, exit 1 (`exitWithError`).
            try? w?.close()
            print("ERROR: \(error)")
            fflush(stdout)
            exit(1)
        }
    }
}
