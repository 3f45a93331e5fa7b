import XCTest
import Foundation
import Adapters
import Autograd
import TensorCore
import ConfigKit
import Experiments
import Finetuning
import Formats
import Models
import Reporting
import Training
import TestSupport

/// `reflow-train --stage lora` through the pipeline: a tiny toy2d teacher, then adapters on it.
final class LoRAStageTests: XCTestCase {
    func loraConfig(_ dir: String) throws -> ExperimentConfig {
        var c = try tinyToyConfig(output: dir, steps: 20)
        c.lora.steps = 12; c.lora.batchSize = 32; c.lora.checkpointEvery = 5; c.lora.logEvery = 2
        c.lora.sampleEvery = 0; c.lora.rank = 2; c.lora.alpha = 4; c.lora.lr = 1e-2; c.lora.warmup = 0
        c.lora.transform = .invert; c.lora.transformClasses = [0]
        return c
    }

    /// Only the adapters train: the base file is untouched, its weights stay frozen, the adapter
    /// file has PEFT-style names and the base's identity; and a run stopped at step 7 and
    /// resumed ends with exactly the adapters of an uninterrupted run.
    func testLoRAStageTrainsOnlyAdaptersAndResumesExactly() throws {
        let dir = try makeTempDir("lora-stage").path
        let p = try Pipeline(config: loraConfig(dir + "/a"))
        Log.level = .warning
        let teacher = try p.trainTeacher(resume: false).path
        let sha = try SHA256.hex(file: teacher)
        let out = try p.trainLoRA(initFrom: teacher, resume: false)
        XCTAssertEqual(try SHA256.hex(file: teacher), sha, "the base checkpoint must not change")
        let archive = try Safetensors.read(out)
        XCTAssertEqual(archive.metadata[LoRAKey.baseSHA256], sha)
        XCTAssertEqual(archive.metadata[LoRAKey.rank], "2")
        XCTAssertEqual(archive.metadata["lora_transform"], "invert")
        XCTAssertTrue(archive.names.allSatisfy { $0.hasPrefix("net.") && ($0.hasSuffix(".lora_A.weight") || $0.hasSuffix(".lora_B.weight")) },
                      "\(archive.names)")
        let bNorm = archive.tensors.filter { $0.key.hasSuffix("lora_B.weight") }.values.flatMap(\.scalars).map { abs($0) }.max() ?? 0
        XCTAssertGreaterThan(bNorm, 0, "training must move B off zero")
        // The adapters apply to their base without --allow-lora-transfer.
        let (m, _) = try FlowModel.load(from: URL(fileURLWithPath: teacher))
        XCTAssertNoThrow(try applyLoRAs([LoRAUse(path: out.path)], to: m, checkpoint: URL(fileURLWithPath: teacher), allowOtherBase: false))

        // Interrupted at step 7 (checkpoint at 5), resumed: the same adapters bit for bit.
        let q = try Pipeline(config: loraConfig(dir + "/b"))
        Log.level = .warning
        _ = try q.trainLoRA(initFrom: teacher, resume: false, stopAfter: 7)
        XCTAssertFalse(FileManager.default.fileExists(atPath: q.run.file("lora.safetensors")))
        let resumed = try q.trainLoRA(initFrom: teacher, resume: true)
        let a = try weights(out.path), b = try weights(resumed.path)
        XCTAssertEqual(a.keys.sorted(), b.keys.sorted())
        for k in a.keys { XCTAssertEqual(a[k]!, b[k]!, "adapter tensor \(k) differs after resume") }
    }

    /// `lora.classes` keeps a subset; `lora.transform` changes only the items of its classes.
    func testDatasetTransformKeepsAndInvertsTheNamedClasses() throws {
        var c = try loraConfig(try makeTempDir("lora-data").path)
        c.lora.classes = [0, 2]; c.lora.transformClasses = [2]
        let p = try Pipeline(config: c)
        let d = try p.loadDataset(.train)
        let t = try p.loraDataset(d)
        let labels = d.labels!, kept = (0..<d.count).filter { [0, 2].contains(labels[$0]) }
        XCTAssertEqual(t.count, kept.count)
        XCTAssertEqual(t.labels!, kept.map { labels[$0] })
        for (j, i) in kept.enumerated() {
            for k in 0..<d.itemSize {
                let want = labels[i] == 2 ? -d.images.ptr[i * d.itemSize + k] : d.images.ptr[i * d.itemSize + k]
                XCTAssertEqual(t.images.ptr[j * d.itemSize + k], want, "item \(i) (class \(labels[i])) value \(k)")
            }
        }
    }

    /// A diffusion teacher's LoRA trains with the teacher's own eps loss on dataset items (as a
    /// LoRA for Stable Diffusion does) and changes the teacher's DPM-Solver++ samples; pairs or
    /// the distill objective on it are refused with the reason.
    func testADiffusionTeacherGetsALoRA() throws {
        let dir = try makeTempDir("lora-diffusion").path
        var c = try loraConfig(dir)
        c.teacher.kind = .diffusion
        let p = try Pipeline(config: c)
        Log.level = .warning
        let teacher = try p.trainTeacher(resume: false).path
        let out = try p.trainLoRA(initFrom: teacher, resume: false)
        let archive = try Safetensors.read(out)
        XCTAssertEqual(archive.metadata["objective"], "diffusion")
        XCTAssertGreaterThan(archive.tensors.filter { $0.key.hasSuffix("lora_B.weight") }.values.flatMap(\.scalars).map { abs($0) }.max() ?? 0, 0)
        let metrics = try String(contentsOfFile: p.run.metricsPath, encoding: .utf8)
        XCTAssertTrue(metrics.contains("\"stage\": \"lora\""), metrics)
        // The teacher with its LoRA draws other samples than without it, from the same noise.
        let (base, _) = try FlowModel.load(from: URL(fileURLWithPath: teacher))
        let (adapted, _) = try FlowModel.load(from: URL(fileURLWithPath: teacher))
        try applyLoRAs([LoRAUse(path: out.path)], to: adapted, checkpoint: URL(fileURLWithPath: teacher), allowOtherBase: false)
        let n = base.spec.itemShape.reduce(1, *)
        let x = Tensor((0..<(4 * n)).map { Float(($0 * 37) % 11) / 5 - 1 }, shape: [4] + base.spec.itemShape)
        let t = Tensor([0.1, 0.4, 0.6, 0.9], shape: [4])
        let captions = Array(try p.loadDataset(.train).captions.prefix(4))
        let a = try noGrad { try base.velocity(x, t: t, text: base.encode(captions)) }.scalars
        let b = try noGrad { try adapted.velocity(x, t: t, text: adapted.encode(captions)) }.scalars
        XCTAssertGreaterThan(zip(a, b).map { abs($0 - $1) }.max()!, 1e-4, "the LoRA must change the teacher's output")

        var d = try loraConfig(dir); d.teacher.kind = .diffusion; d.lora.objective = .distill
        assertThrows(["LoRA base \(teacher) is a diffusion teacher", "distill is for students"]) {
            _ = try Pipeline(config: d).trainLoRA(initFrom: teacher, resume: false)
        }
        var e = try loraConfig(dir); e.teacher.kind = .diffusion; e.lora.pairs = ["pairs.h5"]
        assertThrows(["is a diffusion teacher", "pairs (--input, lora.pairs) are for flows"]) {
            _ = try Pipeline(config: e).trainLoRA(initFrom: teacher, resume: false)
        }
    }

    /// Config errors name the key; a distill LoRA without pairs says how to make them.
    func testLoRAConfigErrors() throws {
        let dir = try makeTempDir("lora-config").path
        var c = try loraConfig(dir)
        c.lora.transformClasses = [99]
        let p = try Pipeline(config: c)
        Log.level = .warning
        let teacher = try p.trainTeacher(resume: false).path
        assertThrows(["lora.transform_classes", "class 99 does not exist"]) { _ = try p.trainLoRA(initFrom: teacher, resume: false) }
        var d = try loraConfig(dir)
        d.lora.objective = .distill
        assertThrows(["objective distill needs pairs", "reflow-gen-pairs"]) {
            _ = try Pipeline(config: d).trainLoRA(initFrom: teacher, resume: false)
        }
        XCTAssertTrue(errorText { try loadConfig(ExperimentConfig.self, yaml: "lora:\n  rank: 0\n", source: "t") }.contains("lora.rank"))
        XCTAssertTrue(errorText { try loadConfig(ExperimentConfig.self, yaml: "lora:\n  targets: [mlp]\n", source: "t") }.contains("lora.targets"))
    }
}
