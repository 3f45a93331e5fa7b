import XCTest
import Experiments
import Datasets
import Diffusion
import Evaluation
import Flow
import Generation
import Models
import Reporting
import TensorCore
import TestSupport
import Foundation
import Autograd
import ConfigKit

/// A toy2d diffusion teacher: the tiny MLP of `tinyToyConfig`, eps-prediction on SD's schedule.
func tinyDiffusionConfig(output: String, steps: Int) throws -> ExperimentConfig {
    var c = try tinyToyConfig(output: output, steps: steps)
    c.teacher.kind = .diffusion
    c.teacher.batchSize = 256
    c.teacher.lr = 3e-3
    c.teacher.warmup = 20
    c.sample.sampler = .dpmSolverPP
    return c
}

/// Mean over the eight toy2d clusters of the Fréchet distance between the points generated for
/// a cluster's caption and that cluster's test points (2-D Gaussian fits): 0 for a perfect
/// model, about 0.01 (the cluster's variance, 2 x 0.07^2) for points collapsed onto the centre.
func toyClusterFrechet(_ generated: Tensor, labels: [Int], test: Dataset) throws -> Double {
    let g = generated.scalars, d = test.images.ptr
    var total = 0.0
    for k in 0..<8 {
        let mine = labels.indices.filter { labels[$0] == k }.flatMap { [g[2 * $0], g[2 * $0 + 1]] }
        let ref = (0..<test.count).filter { test.labels?[$0] == k }.flatMap { [d[2 * $0], d[2 * $0 + 1]] }
        total += try frechetDistance(try GaussianFit(Tensor(mine, shape: [mine.count / 2, 2])),
                                     try GaussianFit(Tensor(ref, shape: [ref.count / 2, 2])))
    }
    return total / 8
}

final class DiffusionTeacherTests: XCTestCase {
    /// Trained for 800 steps, the teacher's 25-step samples match each caption's cluster and its
    /// one-step sample (the x0 prediction from pure noise, divided by alpha_999 = 0.068) does
    /// not. A wrong time input, schedule or target between training and sampling fails it (at
    /// 400 steps the 25-step FD is still 0.24: the test is not loose).
    func testToyTeacherManyStepSamplesBeatOneStep() throws {
        Log.level = .warning
        let out = tempDir("diffusion-teacher")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let cfg = try tinyDiffusionConfig(output: out, steps: 800)
        let url = try Pipeline(config: cfg).trainTeacher(resume: false)
        let (model, meta) = try FlowModel.load(from: url)
        XCTAssertEqual(meta["teacher_kind"], "diffusion")
        XCTAssertEqual(meta["diffusion_prediction"], "epsilon")
        XCTAssertEqual(meta["diffusion_schedule"], "scaled_linear")
        let teacher = try XCTUnwrap(try DiffusionTeacher(metadata: meta, source: url.path))
        XCTAssertEqual(teacher.schedule, .stableDiffusion)

        // 100 points per cluster caption, each cluster scored against its own test points.
        let n = 800
        let labels = (0..<n).map { $0 % 8 }
        let prompts = labels.map { Dataset.toy2dComponentNames[$0] }
        let test = try Dataset.toy2d(split: .test, count: 4000)
        let xT = itemNoise(seed: 11, first: 0, count: n, itemShape: [2, 1, 1])
        func score(_ kind: DiffusionSamplerKind, _ steps: Int) throws -> Double {
            let s = try kind.make(for: teacher, steps: steps)
            return try toyClusterFrechet(try generateDiffusion(model, teacher: teacher, xT: xT, prompts: prompts,
                                                               sampler: s, guidance: 1).images, labels: labels, test: test)
        }
        let one = try score(.dpmSolverPP, 1), dpm = try score(.dpmSolverPP, 25), ddim = try score(.ddim, 25)
        print("toy2d diffusion teacher, per-cluster FD: 1 step \(one), dpm-solver++ 25 \(dpm), ddim 25 \(ddim)")
        XCTAssertLessThan(dpm, 0.3 * one)
        XCTAssertLessThan(ddim, 0.3 * one)
        // Below a collapsed cluster's 0.0098: the samples have the clusters' spread too.
        XCTAssertLessThan(dpm, 0.005)
        XCTAssertLessThan(ddim, 0.005)
    }

    /// Stopped and resumed, the diffusion teacher ends with the weights of an uninterrupted run
    /// (its steps and noise are functions of (seed, step), like the flow teacher's t).
    func testResumeIsExact() throws {
        Log.level = .warning
        let a = tempDir("diffusion-resume-a"), b = tempDir("diffusion-resume-b")
        defer { for d in [a, b] { try? FileManager.default.removeItem(atPath: d) } }
        let straight = try Pipeline(config: try tinyDiffusionConfig(output: a, steps: 20)).trainTeacher(resume: false)
        let cfgB = try tinyDiffusionConfig(output: b, steps: 20)
        _ = try Pipeline(config: cfgB).trainTeacher(resume: false, stopAfter: 10)
        let resumed = try Pipeline(config: cfgB).trainTeacher(resume: true)
        XCTAssertEqual(try weights(straight.path), try weights(resumed.path))
    }

    func testConfigKeysAndErrors() throws {
        let out = tempDir("diffusion-config")
        defer { try? FileManager.default.removeItem(atPath: out) }
        let c = try tinyToyConfig(output: out)
        XCTAssertEqual(c.teacher.kind, .flow)
        XCTAssertNil(try c.teacher.diffusionTeacher())
        let path = repoRoot + "/experiments/toy2d.yaml"
        let d = try loadConfig(ExperimentConfig.self, path: path, overrides: ["teacher.kind=diffusion", "teacher.noise_schedule=cosine",
                                                                             "teacher.prediction=v_prediction"])
        let t = try XCTUnwrap(try d.teacher.diffusionTeacher())
        XCTAssertEqual(t.schedule.kind, .cosine)
        XCTAssertEqual(t.prediction, .v)
        XCTAssertThrowsError(try loadConfig(ExperimentConfig.self, path: path, overrides: ["teacher.noise_schedule=karras"])) { e in
            XCTAssertTrue("\(e)".contains("teacher.noise_schedule") && "\(e)".contains("scaled_linear"), "\(e)")
        }
        XCTAssertThrowsError(try loadConfig(ExperimentConfig.self, path: path, overrides: ["teacher.kind=gan"])) { e in
            XCTAssertTrue("\(e)".contains("teacher.kind") && "\(e)".contains("diffusion"), "\(e)")
        }
        XCTAssertThrowsError(try loadConfig(ExperimentConfig.self, path: path, overrides: ["teacher.beta_end=1.5"])) { e in
            XCTAssertTrue("\(e)".contains("teacher.beta_end: must be below 1"), "\(e)")
        }
    }
}
