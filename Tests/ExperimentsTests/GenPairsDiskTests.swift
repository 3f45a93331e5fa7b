import XCTest
import TestSupport
import Experiments
import TripletStore
import Reporting
import Foundation

/// reflow-gen-pairs on a full disk and into a read-only folder: exit 1 with a message naming the
/// pair file (not a crash), the committed rows intact, and the same command finishes the file
/// equal to an uninterrupted run.
final class GenPairsDiskTests: XCTestCase {
    private struct Run { var status: Int32; var signaled: Bool; var stderr: String }

    /// Runs the tool through /bin/sh so that a file size limit can be set (SIGXFSZ ignored: a
    /// write past the limit fails with EFBIG, as on a full disk) or privileges dropped.
    private func run(_ exe: String, _ args: [String], limitBytes: Int? = nil, asUser: String? = nil) throws -> Run {
        var prefix = ""
        // prlimit takes bytes (ulimit -f counts blocks of a shell-dependent size); the ignored
        // SIGXFSZ is inherited through exec.
        if let limitBytes { prefix = "trap '' XFSZ; exec prlimit --fsize=\(limitBytes) -- " }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        let tool = asUser.map { "setpriv --reuid=\($0) --regid=\($0) --clear-groups \"$0\" \"$@\"" } ?? "\"$0\" \"$@\""
        p.arguments = ["-c", (prefix.isEmpty ? "exec " : prefix) + tool, exe] + args
        let err = Pipe()
        p.standardOutput = FileHandle.nullDevice
        p.standardError = err
        try p.run()
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        // Every layer execs, so the process is the tool: a signal that kills it shows as one.
        return Run(status: p.terminationStatus, signaled: p.terminationReason == .uncaughtSignal, stderr: text)
    }

    private func setUpJob(_ name: String) throws -> (exe: String, dir: String, args: [String]) {
        guard let exe = builtTool("reflow-gen-pairs") else {
            throw XCTSkip("reflow-gen-pairs not built next to the tests (swift build --build-tests builds it)")
        }
        let dir = tempDir(name)
        let p = try Pipeline(config: chainToyConfig(output: dir))
        Log.level = .warning
        let teacher = dir + "/teacher.safetensors"
        try randomTeacher(p, path: teacher)
        let args = ["--config", repoRoot + "/experiments/toy2d.yaml", "--teacher", teacher]
            + chainToySets(output: dir).flatMap { ["--set", $0] } + ["--count", "2048"]
        return (exe, dir, args)
    }

    func testDiskFullExitsOneAndResumes() throws {
        let (exe, dir, args) = try setUpJob("genpairs-full")
        let ref = try run(exe, args + ["--output", dir + "/ref.h5"])
        XCTAssertEqual(ref.status, 0, ref.stderr)
        let size = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: dir + "/ref.h5")[.size] as? Int)

        let out = dir + "/full.h5"
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/prlimit") else { throw XCTSkip("prlimit (util-linux) not found") }
        let full = try run(exe, args + ["--output", out], limitBytes: size / 2)
        XCTAssertFalse(full.signaled, "killed by signal \(full.status): \(full.stderr)")
        XCTAssertEqual(full.status, 1, full.stderr)
        XCTAssertTrue(full.stderr.contains(out), full.stderr)
        XCTAssertFalse(full.stderr.contains("pass --overwrite"), full.stderr)
        XCTAssertTrue(full.stderr.contains("the disk is full"), full.stderr)

        let again = try run(exe, args + ["--output", out])
        XCTAssertEqual(again.status, 0, again.stderr)
        XCTAssertTrue(again.stderr.contains("resuming at pair"), "nothing was committed before the disk filled: \(again.stderr)")
        assertSamePairs(try PairsFile(path: dir + "/ref.h5"), try PairsFile(path: out))
    }

    /// Root ignores permissions, so as root the tool runs as user nobody (setpriv).
    func testReadOnlyOutputExitsOneAndKeepsRows() throws {
        var (exe, dir, args) = try setUpJob("genpairs-readonly")
        let user: String? = geteuid() == 0 ? "65534" : nil
        let fm = FileManager.default
        if user != nil {
            guard fm.isExecutableFile(atPath: "/usr/bin/setpriv") else { throw XCTSkip("running as root without setpriv") }
            try fm.setAttributes([.posixPermissions: 0o777], ofItemAtPath: dir)  // nobody's run folder goes there
            // The checkout may sit in a folder only root can enter (mktemp -d is 0700): give
            // nobody its own copies of the tool and the config.
            let tool = dir + "/reflow-gen-pairs", config = dir + "/toy2d.yaml"
            try fm.copyItem(atPath: exe, toPath: tool)
            try fm.copyItem(atPath: repoRoot + "/experiments/toy2d.yaml", toPath: config)
            try fm.setAttributes([.posixPermissions: 0o644], ofItemAtPath: config)
            exe = tool
            args = args.map { $0 == repoRoot + "/experiments/toy2d.yaml" ? config : $0 }
        }
        let folder = dir + "/ro", out = folder + "/pairs.h5"
        try fm.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let part = try run(exe, args + ["--output", out, "--count", "512"])
        XCTAssertEqual(part.status, 0, part.stderr)
        let before = try PairsFile(path: out)
        XCTAssertEqual(before.count, 512)
        try fm.setAttributes([.posixPermissions: 0o555], ofItemAtPath: folder)
        try fm.setAttributes([.posixPermissions: 0o444], ofItemAtPath: out)
        defer { try? fm.setAttributes([.posixPermissions: 0o755], ofItemAtPath: folder) }
        let own = ["--set", "output_dir=\(dir)/other-user"]

        let resume = try run(exe, args + own + ["--output", out], asUser: user)
        XCTAssertFalse(resume.signaled, resume.stderr)
        XCTAssertEqual(resume.status, 1, resume.stderr)
        XCTAssertTrue(resume.stderr.contains(out) && resume.stderr.contains("read-only"), resume.stderr)
        let fresh = try run(exe, args + own + ["--output", folder + "/new.h5"], asUser: user)
        XCTAssertEqual(fresh.status, 1, fresh.stderr)
        XCTAssertTrue(fresh.stderr.contains(folder + "/new.h5") && fresh.stderr.contains("not writable"), fresh.stderr)
        XCTAssertFalse(fm.fileExists(atPath: folder + "/new.h5"))

        // The rows are intact, and once writable again the same command finishes the file.
        assertSamePairs(before, try PairsFile(path: out))
        try fm.setAttributes([.posixPermissions: 0o755], ofItemAtPath: folder)
        try fm.setAttributes([.posixPermissions: 0o644], ofItemAtPath: out)
        let done = try run(exe, args + ["--output", out])
        XCTAssertEqual(done.status, 0, done.stderr)
        let ref = try run(exe, args + ["--output", dir + "/ref.h5"])
        XCTAssertEqual(ref.status, 0, ref.stderr)
        assertSamePairs(try PairsFile(path: dir + "/ref.h5"), try PairsFile(path: out))
    }
}
