import XCTest
import Reporting
import Formats

final class RunFolderTests: XCTestCase {
    private var root = ""

    override func setUpWithError() throws {
        root = NSTemporaryDirectory() + "exp-run-\(UUID().uuidString)"
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(atPath: root)
    }

    func testCreatesLayoutWithIntermediateDirectories() throws {
        let run = try RunFolder(root: root + "/nested/runs", name: "digits")
        var isDir: ObjCBool = false
        XCTAssertEqual(run.path, root + "/nested/runs/digits")
        for dir in [run.path, run.samplesPath, run.checkpointsPath] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: dir, isDirectory: &isDir) && isDir.boolValue, dir)
        }
        XCTAssertEqual(run.configPath, run.path + "/config.yaml")
        XCTAssertEqual(run.metricsPath, run.path + "/metrics.jsonl")
        XCTAssertEqual(run.resultsPath, run.path + "/results.md")
        // Opening it again reuses it.
        XCTAssertEqual(try RunFolder(root: root + "/nested/runs", name: "digits").path, run.path)
        XCTAssertThrowsError(try RunFolder(root: root, name: ""))
        XCTAssertThrowsError(try RunFolder(root: root, name: "../escape"))
    }

    /// A command that fails before doing work leaves no run folder; one that wrote anything
    /// else, and one that existed before, stay.
    func testOnlyNewRunFoldersWithNothingButTheirConfigAreRemoved() throws {
        let fm = FileManager.default
        let unused = try RunFolder(root: root, name: "unused")
        try unused.writeConfig("name: unused\n")
        let newRoot = try RunFolder(root: root + "/new/runs", name: "unused")
        try newRoot.writeConfig("name: unused\n")
        try fm.createDirectory(atPath: unused.file("pairs"), withIntermediateDirectories: true)
        let worked = try RunFolder(root: root, name: "worked")
        try worked.writeConfig("name: worked\n")
        try atomicWrite("{}\n", to: worked.file("samples/teacher_0.png"))
        try fm.createDirectory(atPath: root + "/old", withIntermediateDirectories: true)
        let reused = try RunFolder(root: root, name: "old")
        try reused.writeConfig("name: old\n")
        RunFolder.removeUnusedNewFolders(under: root)
        XCTAssertFalse(fm.fileExists(atPath: unused.path))
        XCTAssertFalse(fm.fileExists(atPath: root + "/new"))
        XCTAssertTrue(fm.fileExists(atPath: worked.file("samples/teacher_0.png")))
        XCTAssertTrue(fm.fileExists(atPath: worked.configPath))
        XCTAssertTrue(fm.fileExists(atPath: reused.configPath))
    }

    func testAtomicWriteReplacesAndLeavesNoTempFiles() throws {
        let run = try RunFolder(root: root, name: "atomic")
        let path = run.file("results.md")
        try atomicWrite("first\n", to: path)
        try atomicWrite(Data("second\n".utf8), to: path)
        XCTAssertEqual(try String(contentsOfFile: path, encoding: .utf8), "second\n")
        try run.writeResults("| a |\n")
        XCTAssertEqual(try String(contentsOfFile: run.resultsPath, encoding: .utf8), "| a |\n")
        let files = try FileManager.default.contentsOfDirectory(atPath: run.path).sorted()
        XCTAssertEqual(files, ["checkpoints", "results.md", "samples"])
        // A failed write (missing directory) leaves nothing behind and throws.
        XCTAssertThrowsError(try atomicWrite("x", to: run.path + "/missing/dir/file"))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: run.path).sorted(), files)
    }

    func testMetricsLinesAreJSON() throws {
        let run = try RunFolder(root: root, name: "metrics")
        do {
            let log = try run.openMetrics()
            try log.append(["step": 1, "loss": 0.25, "stage": "teacher", "ema": true])
            try log.log(step: 2, [("loss", 0.125), ("lr", 1e-4)], extra: [("stage", "reflow")])
            try log.append([("nan", .double(.nan)), ("f", .float(0.1)), ("text", .string("a \"q\"\n\tb"))])
        }
        // Reopening appends.
        try run.openMetrics().log(step: 3, [("loss", 0.0625)])
        let text = try String(contentsOfFile: run.metricsPath, encoding: .utf8)
        let lines = text.split(separator: "\n")
        XCTAssertEqual(lines.count, 4)
        XCTAssertEqual(String(lines[0]), #"{"step": 1, "loss": 0.25, "stage": "teacher", "ema": true}"#)
        XCTAssertEqual(String(lines[1]), #"{"step": 2, "stage": "reflow", "loss": 0.125, "lr": 0.0001}"#)
        XCTAssertEqual(String(lines[2]), #"{"nan": null, "f": 0.1, "text": "a \"q\"\n\tb"}"#)
        for line in lines {
            XCTAssertNoThrow(try JSONSerialization.jsonObject(with: Data(line.utf8)))
        }
        let rows = try MetricsLog.read(path: run.metricsPath)
        XCTAssertEqual(rows.count, 4)
        XCTAssertEqual(rows[1]["stage"] as? String, "reflow")
        XCTAssertEqual(rows[3]["step"] as? Int, 3)
        XCTAssertEqual(rows[3]["loss"] as? Double, 0.0625)
        XCTAssertEqual(rows[2]["text"] as? String, "a \"q\"\n\tb")
    }
}
