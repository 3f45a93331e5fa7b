import XCTest
import Autograd
import Diffusion
import Flow
import TensorCore
import TestSupport

final class DiffusionLossTests: XCTestCase {
    /// betas 0.1, 0.2, 0.3, 0.4: alphas_cumprod 0.9, 0.72, 0.504, 0.3024.
    func tinyTeacher(_ p: DiffusionPrediction) throws -> DiffusionTeacher {
        DiffusionTeacher(schedule: try VPSchedule(kind: .linear, trainSteps: 4, betaStart: 0.1, betaEnd: 0.4), prediction: p)
    }

    // Two items of two values at steps 1 and 3, and the network f(x, t) = t x, so the loss
    // depends on the noising, the targets and the time input all at once. By hand:
    //   x_s = sqrt(ab_s) data + sqrt(1 - ab_s) eps,  t = 1 - s/4 (0.75 and 0.25),
    //   eps:  mean((t x_s - eps)^2),  v: mean((t x_s - (sqrt(ab_s) eps - sqrt(1 - ab_s) data))^2)
    // python3 -c "import math; ab=[.9,.72,.504,.3024]; d=[[1,-1],[.5,2]]; e=[[.5,.25],[-1,1]]; s=[1,3]
    //   print(sum((math.sqrt(ab[s[i]])*d[i][j]+math.sqrt(1-ab[s[i]])*e[i][j])*(1-s[i]/4)-e[i][j])**2
    //   for i in range(2) for j in range(2))/4)"   -> 0.43443735183465504 (v: 1.4439972645421701)
    let data = Tensor([1, -1, 0.5, 2], shape: [2, 2, 1, 1])
    let noise = Tensor([0.5, 0.25, -1, 1], shape: [2, 2, 1, 1])

    func lossWithTimeCheck(_ teacher: DiffusionTeacher) throws -> Float {
        var seen: [Float] = []
        let net: Velocity = { x, t in
            seen = t.scalars
            return try x * (try broadcastTimes(t, like: x))
        }
        let l = try teacher.loss(net: net, data: data, noise: noise, steps: [1, 3])
        XCTAssertEqual(seen, [0.75, 0.25], "the network's time input is flow time 1 - s/T")
        return l.item
    }

    func testEpsilonLossMatchesHandComputation() throws {
        XCTAssertEqual(try lossWithTimeCheck(try tinyTeacher(.epsilon)), 0.43443735, accuracy: 1e-6)
    }

    func testVLossMatchesHandComputation() throws {
        XCTAssertEqual(try lossWithTimeCheck(try tinyTeacher(.v)), 1.4439973, accuracy: 1e-6)
    }

    func testLossHasGradientsAndChecksInputs() throws {
        let teacher = try tinyTeacher(.epsilon)
        let w = Tensor([2], shape: [1], requiresGrad: true)
        let l = try teacher.loss(net: { x, _ in try x * w }, data: data, noise: noise, steps: [0, 2])
        l.backward()
        XCTAssertNotNil(w.grad)
        XCTAssertNotEqual(w.grad?.scalars.first ?? 0, 0)
        assertThrows(["step 4 is outside 0..<4"]) { _ = try teacher.loss(net: { x, _ in x }, data: data, noise: noise, steps: [0, 4]) }
        assertThrows(["1 steps for a batch of 2"]) { _ = try teacher.loss(net: { x, _ in x }, data: data, noise: noise, steps: [0]) }
    }

    func testStepsAreUniformOverAllTrainSteps() throws {
        let teacher = DiffusionTeacher(schedule: .stableDiffusion, prediction: .epsilon)
        var rng = RNG(seed: 3)
        let s = teacher.sampleSteps(20_000, rng: &rng)
        XCTAssertEqual(s.min(), 0)
        XCTAssertEqual(s.max(), 999)
        let mean = Double(s.reduce(0, +)) / Double(s.count)
        // Uniform on {0..999}: mean 499.5, standard error 288.7 / sqrt(20000) = 2.0.
        XCTAssertEqual(mean, 499.5, accuracy: 8)
        XCTAssertLessThan(Double(s.filter { $0 < 500 }.count) / 20_000, 0.52)
        XCTAssertGreaterThan(Double(s.filter { $0 < 500 }.count) / 20_000, 0.48)
    }

    func testMetadataRoundTripAndErrors() throws {
        let teacher = DiffusionTeacher(schedule: try VPSchedule(kind: .cosine, trainSteps: 1000, betaStart: 0, betaEnd: 0), prediction: .v)
        let back = try DiffusionTeacher(metadata: teacher.metadata, source: "t.safetensors")
        XCTAssertEqual(back, teacher)
        let sd = DiffusionTeacher(schedule: .stableDiffusion, prediction: .epsilon)
        XCTAssertEqual(try DiffusionTeacher(metadata: sd.metadata, source: "t"), sd)
        XCTAssertEqual(sd.metadata["teacher_kind"], "diffusion")
        XCTAssertEqual(sd.metadata["diffusion_schedule"], "scaled_linear")
        // A flow checkpoint (no teacher_kind, or "flow") is no diffusion teacher.
        XCTAssertNil(try DiffusionTeacher(metadata: ["model_spec": "{}"], source: "f"))
        XCTAssertNil(try DiffusionTeacher(metadata: ["teacher_kind": "flow"], source: "f"))
        assertThrows(["x.safetensors: metadata 'teacher_kind' is 'gan'; valid: flow, diffusion"]) {
            _ = try DiffusionTeacher(metadata: ["teacher_kind": "gan"], source: "x.safetensors")
        }
        var m = sd.metadata
        m["diffusion_schedule"] = "karras"
        assertThrows(["x.safetensors", "unknown schedule 'karras'", "scaled_linear"]) { _ = try DiffusionTeacher(metadata: m, source: "x.safetensors") }
        m = sd.metadata
        m["diffusion_prediction"] = nil
        assertThrows(["x.safetensors: a diffusion checkpoint's metadata needs 'diffusion_prediction'"]) {
            _ = try DiffusionTeacher(metadata: m, source: "x.safetensors")
        }
        m = sd.metadata
        m["diffusion_train_steps"] = "-3"
        assertThrows(["'diffusion_train_steps' must be an integer in 2...100000"]) { _ = try DiffusionTeacher(metadata: m, source: "x") }
    }

    func testModelMapsStepsToFlowTime() throws {
        let sd = DiffusionTeacher(schedule: .stableDiffusion, prediction: .epsilon)
        var seen: [Float] = []
        let m = sd.model { x, t in seen = t.scalars; return x }
        _ = try m(Tensor.zeros([3, 1]), Tensor([999, 500, 0], shape: [3]))
        assertClose(seen, [0.001, 0.5, 1], atol: 1e-6)
    }

    func testSamplerKinds() throws {
        let sd = DiffusionTeacher(schedule: .stableDiffusion, prediction: .epsilon)
        XCTAssertEqual(try DiffusionSamplerKind(name: "dpmsolver++").make(for: sd, steps: 25).timesteps.count, 25)
        XCTAssertEqual(try DiffusionSamplerKind.ddim.make(for: sd, steps: 25).timesteps.first, 961)
        // ddim-clean: SD's timesteps, but the last step goes to alpha = 1 (recorded as step -1), not step 0.
        let clean = try DiffusionSamplerKind(name: "ddim-clean").make(for: sd, steps: 25)
        XCTAssertEqual(clean.timesteps, try DiffusionSamplerKind.ddim.make(for: sd, steps: 25).timesteps)
        let model = sd.model { x, _ in x * 0.5 }
        let x = Tensor([0.3, -1.2], shape: [2, 1])
        XCTAssertEqual(try clean.sample(model, xT: x, record: true).trajectory?.last?.t, -1)
        XCTAssertEqual(try DiffusionSamplerKind.ddim.make(for: sd, steps: 25).sample(model, xT: x, record: true).trajectory?.last?.t, 0)
        assertThrows(["unknown diffusion sampler 'euler'; valid: ddim, ddim-clean, dpmsolver++"]) { _ = try DiffusionSamplerKind(name: "euler") }
        assertThrows(["ddim with 0 steps"]) { _ = try DiffusionSamplerKind.ddim.make(for: sd, steps: 0) }
    }
}
