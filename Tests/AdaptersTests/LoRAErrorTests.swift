import XCTest
import Adapters
import Autograd
import Formats
import Models
import NN
import TensorCore
import TestSupport

final class LoRAErrorTests: XCTestCase {
    /// A LoRA saved for one checkpoint, and that checkpoint's path and hash.
    func makeLoRA(_ dir: String, kind: ModelSpec.Kind = .unet, hidden: Int = 16,
                  targets: [LoRATarget] = LoRATarget.allCases) throws -> (base: String, lora: String, sha: String) {
        let base = "\(dir)/base-\(kind)-\(hidden).safetensors"
        let m = try tinyModel(kind, hidden: hidden)
        try m.save(to: URL(fileURLWithPath: base), stage: "teacher", step: 1)
        let sha = try SHA256.hex(file: base)
        let set = try LoRASet(model: m, rank: 2, alpha: 2, targets: targets, seed: 3)
        let lora = "\(dir)/lora-\(kind)-\(hidden).safetensors"
        try set.save(to: URL(fileURLWithPath: lora), base: base, baseSHA256: sha, baseStage: "teacher")
        return (base, lora, sha)
    }

    /// Another checkpoint of the same architecture: refused, naming both hashes and the way to
    /// allow it; allowed with allowOtherBase.
    func testOtherBaseHashIsRefusedUnlessAllowed() throws {
        let dir = try tempDir()
        let (_, lora, sha) = try makeLoRA(dir)
        let other = "\(dir)/other.safetensors"
        try tinyModel(.unet, seed: 2).save(to: URL(fileURLWithPath: other), stage: "distill", step: 1)
        let otherSHA = try SHA256.hex(file: other)
        let (m, _) = try FlowModel.load(from: URL(fileURLWithPath: other))
        assertThrows([lora, "sha256 \(sha)", "sha256 \(otherSHA)", other, "--allow-lora-transfer"]) {
            try applyLoRAs([LoRAUse(path: lora)], to: m, checkpoint: URL(fileURLWithPath: other), allowOtherBase: false)
        }
        XCTAssertNoThrow(try applyLoRAs([LoRAUse(path: lora)], to: m, checkpoint: URL(fileURLWithPath: other), allowOtherBase: true))
    }

    /// A checkpoint trained from the LoRA's base (its metadata's init_from / init_sha256, as the
    /// 2-RF records the teacher and the student the 2-RF) takes the LoRA without
    /// allowOtherBase, two generations down too; the same file with another recorded ancestor
    /// is refused, naming the lineage.
    func testDescendantsOfTheBaseTakeTheLoRA() throws {
        let dir = try tempDir()
        let (base, lora, sha) = try makeLoRA(dir)
        let child = "\(dir)/reflow.safetensors", grandchild = "\(dir)/distill.safetensors"
        try tinyModel(.unet, seed: 5).save(to: URL(fileURLWithPath: child), stage: "reflow", step: 1,
                                           extra: ["init_from": base, "init_sha256": sha])
        try tinyModel(.unet, seed: 6).save(to: URL(fileURLWithPath: grandchild), stage: "distill", step: 1,
                                           extra: ["init_from": child, "init_sha256": try SHA256.hex(file: child)])
        for path in [child, grandchild] {
            let (m, _) = try FlowModel.load(from: URL(fileURLWithPath: path))
            XCTAssertEqual(try applyLoRAs([LoRAUse(path: lora)], to: m, checkpoint: URL(fileURLWithPath: path), allowOtherBase: false).count, 1, path)
        }
        XCTAssertEqual(try mergeLoRAs(base: grandchild, uses: [LoRAUse(path: lora)], output: "\(dir)/merged.safetensors", allowOtherBase: false) > 0, true)
        let stranger = "\(dir)/stranger.safetensors"
        try tinyModel(.unet, seed: 7).save(to: URL(fileURLWithPath: stranger), stage: "reflow", step: 1,
                                           extra: ["init_from": child, "init_sha256": String(repeating: "ab", count: 32)])
        let (m, _) = try FlowModel.load(from: URL(fileURLWithPath: stranger))
        assertThrows([lora, "sha256 \(sha)", "nor on a checkpoint it was trained from (abababababab)", "--allow-lora-transfer"]) {
            try applyLoRAs([LoRAUse(path: lora)], to: m, checkpoint: URL(fileURLWithPath: stranger), allowOtherBase: false)
        }
    }

    /// Layer shapes that do not fit (a LoRA of a wider MLP) are refused even with transfer
    /// allowed, naming the layer and both shapes.
    func testShapeMismatchNamesTheLayer() throws {
        let dir = try tempDir()
        let (_, wide, _) = try makeLoRA(dir, kind: .mlp, hidden: 24)
        let (narrowBase, _, _) = try makeLoRA(dir, kind: .mlp, hidden: 16)
        let (m, _) = try FlowModel.load(from: URL(fileURLWithPath: narrowBase))
        assertThrows([wide, "layer 'net.", "does not fit", "lora_A.weight [2, ", "needs [2, "]) {
            try applyLoRAs([LoRAUse(path: wide)], to: m, checkpoint: URL(fileURLWithPath: narrowBase), allowOtherBase: true)
        }
        // A LoRA of the U-Net's convolutions names a layer the MLP does not have.
        let (_, unetLoRA, _) = try makeLoRA(dir, kind: .unet, targets: [.conv])
        assertThrows([unetLoRA, "layer 'net.stem'", "is not a linear or convolution layer"]) {
            try applyLoRAs([LoRAUse(path: unetLoRA)], to: m, checkpoint: URL(fileURLWithPath: narrowBase), allowOtherBase: true)
        }
        // Nothing was attached by the refused calls.
        XCTAssertTrue(m.adaptableLayers().allSatisfy { name, l in
            if case .linear(let lin, _) = l { return lin.adapters.isEmpty }
            return true
        })
    }

    func testBadScaleAndMissingFileMessages() throws {
        XCTAssertEqual(try LoRAUse(parsing: "a.safetensors:0.5"), LoRAUse(path: "a.safetensors", scale: 0.5))
        XCTAssertEqual(try LoRAUse(parsing: "a.safetensors"), LoRAUse(path: "a.safetensors", scale: 1))
        XCTAssertEqual(try LoRAUse(parsing: "dir/a.safetensors:-2"), LoRAUse(path: "dir/a.safetensors", scale: -2))
        assertThrows(["LoRA 'a.safetensors:big'", "scale 'big' is not a number", "FILE:scale"]) { _ = try LoRAUse(parsing: "a.safetensors:big") }
        assertThrows(["scale 'inf' is not a number"]) { _ = try LoRAUse(parsing: "a.safetensors:inf") }
        assertThrows(["no file before ':'"]) { _ = try LoRAUse(parsing: ":2") }
        let dir = try tempDir()
        let (base, _, _) = try makeLoRA(dir)
        let (m, _) = try FlowModel.load(from: URL(fileURLWithPath: base))
        assertThrows(["LoRA file \(dir)/nope.safetensors not found"]) {
            try applyLoRAs([LoRAUse(path: "\(dir)/nope.safetensors")], to: m, checkpoint: URL(fileURLWithPath: base), allowOtherBase: false)
        }
        // A model checkpoint is not an adapter file.
        assertThrows([base, "is not a reflow LoRA file"]) {
            try applyLoRAs([LoRAUse(path: base)], to: m, checkpoint: URL(fileURLWithPath: base), allowOtherBase: false)
        }
        assertThrows(["base checkpoint \(dir)/missing.safetensors not found"]) {
            try mergeLoRAs(base: "\(dir)/missing.safetensors", uses: [LoRAUse(path: base)], output: "\(dir)/o.safetensors", allowOtherBase: false)
        }
    }

    /// The tools: a bad scale is a usage error (exit 64), a missing adapter file a runtime error
    /// (exit 1), both as `error: ...` lines naming the argument.
    func testToolErrors() throws {
        guard let tool = builtTool("reflow-lora"), let sampler = builtTool("reflow-sample") else { throw XCTSkip("reflow-lora, reflow-sample not built") }
        let dir = try tempDir()
        let (base, lora, _) = try makeLoRA(dir)
        func run(_ args: [String], _ exe: String? = nil) throws -> (Int32, String) {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: exe ?? tool)
            p.arguments = args
            let err = Pipe()
            p.standardError = err
            p.standardOutput = Pipe()
            try p.run()
            let data = err.fileHandleForReading.readDataToEndOfFile()
            p.waitUntilExit()
            return (p.terminationStatus, String(decoding: data, as: UTF8.self))
        }
        var (code, text) = try run(["merge", base, "\(lora):x2", "--output", "\(dir)/m.safetensors"])
        XCTAssertEqual(code, 64, text)
        XCTAssertTrue(text.hasPrefix("error: LoRA '\(lora):x2': scale 'x2' is not a number"), text)
        (code, text) = try run(["merge", base, "\(dir)/gone.safetensors:0.5", "--output", "\(dir)/m.safetensors"])
        XCTAssertEqual(code, 1, text)
        XCTAssertTrue(text.contains("error: LoRA file \(dir)/gone.safetensors not found"), text)
        (code, text) = try run(["merge", base, "\(lora):0.5", "--output", "\(dir)/m.safetensors"])
        XCTAssertEqual(code, 0, text)
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(dir)/m.safetensors"))
        // reflow-sample --lora: the same rules, and the merged checkpoint is another base.
        let sample = ["--prompt", "a small red square", "--steps", "2", "--output", "\(dir)/s.png", "--lora"]
        (code, text) = try run([base] + sample + ["\(lora):1e"], sampler)
        XCTAssertEqual(code, 64, text)
        XCTAssertTrue(text.hasPrefix("error: LoRA '\(lora):1e': scale '1e' is not a number"), text)
        (code, text) = try run(["\(dir)/m.safetensors"] + sample + [lora], sampler)
        XCTAssertEqual(code, 1, text)
        XCTAssertTrue(text.contains("error: LoRA file \(lora) was trained on \(base)") && text.contains("pass --allow-lora-transfer"), text)
        (code, text) = try run(["\(dir)/m.safetensors"] + sample + [lora, "--allow-lora-transfer"], sampler)
        XCTAssertEqual(code, 0, text)
        XCTAssertTrue(text.contains("applied LoRA \(lora)"), text)
    }
}
