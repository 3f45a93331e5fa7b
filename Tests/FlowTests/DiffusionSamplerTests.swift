import XCTest
import Autograd
import TensorCore
import Flow
import TestSupport

/// The samplers' behaviour beyond parity: convergence to the exact probability-flow solution,
/// what they record, their errors, and the flow-time mapping.
final class DiffusionSamplerTests: XCTestCase {
    let sd = VPSchedule.stableDiffusion
    // Per-element Gaussian data N(mu, std^2) over 4 elements, batch of 2.
    let data = DiffusionFixture.Branch(mu: [0.5, -0.3, 0.1, 0.8], std: [0.3, 0.5, 0.2, 0.4])
    let xT = Tensor([1.2, -0.7, 0.3, -1.9, 0.4, 2.1, -0.2, 0.9], shape: [2, 4])

    /// The exact probability-flow map for Gaussian data from step `s` to the level (alpha, sigma):
    /// it keeps z = (x - alpha_s mu) / sqrt(alpha_s^2 c^2 + sigma_s^2) fixed.
    func exact(from s: Int, toAlpha a: Double, sigma: Double) -> [Double] {
        let (aS, sS) = (sd.alpha(s), sd.sigma(s))
        return xT.scalars.enumerated().map { j, x in
            let mu = Double(data.mu[j % 4]), c = Double(data.std[j % 4])
            let z = (Double(x) - aS * mu) / (aS * aS * c * c + sS * sS).squareRoot()
            return a * mu + (a * a * c * c + sigma * sigma).squareRoot() * z
        }
    }

    /// The error of the state at step 99, which the trailing grids of 10, 20 and 40 steps all
    /// visit (999, 899, ..., 99 is every fourth point of the 40-step grid), so that errors at
    /// different step counts are measured at the same place.
    func errorOf(_ sampler: DiffusionSampler, prediction: DiffusionPrediction) throws -> Double {
        let model = DiffusionFixture.gaussianModel(data, prediction: prediction, alphasCumprod: sd.alphasCumprod)
        let traj = try XCTUnwrap(try sampler.sample(model, xT: xT, record: true).trajectory)
        let state = try XCTUnwrap(traj.first { $0.t == 99 }, "\(sampler.name) never visits step 99")
        return maxError(state.x, exact(from: sampler.timesteps[0], toAlpha: sd.alpha(99), sigma: sd.sigma(99)))
    }

    /// DPM-Solver++(2M) is second order and DDIM first order: doubling the steps cuts their
    /// errors by ~4x and ~2x against the exact probability-flow solution (printed). At equal
    /// cost DPM-Solver++ is far closer, which is why it is the pairs solver.
    func testConvergenceToExactSolution() throws {
        for prediction in DiffusionPrediction.allCases {
            func dpm(_ n: Int) throws -> Double {
                try errorOf(try DPMSolverPP(schedule: sd, steps: n, prediction: prediction, spacing: .trailing, stepsOffset: 0),
                            prediction: prediction)
            }
            func ddim(_ n: Int) throws -> Double {
                try errorOf(try DDIM(schedule: sd, steps: n, prediction: prediction, spacing: .trailing, stepsOffset: 0, setAlphaToOne: true),
                            prediction: prediction)
            }
            let (d10, d20, d40) = (try dpm(10), try dpm(20), try dpm(40))
            let (e10, e20, e40) = (try ddim(10), try ddim(20), try ddim(40))
            print("\(prediction.rawValue): dpm++ errors \(d10) \(d20) \(d40) (ratios \(d10 / d20), \(d20 / d40)); ddim \(e10) \(e20) \(e40) (ratios \(e10 / e20), \(e20 / e40))")
            XCTAssertGreaterThan(d20 / d40, 3, "dpm++ order")
            XCTAssertLessThan(d20 / d40, 8, "dpm++ order")
            XCTAssertGreaterThan(e20 / e40, 1.6, "ddim order")
            XCTAssertLessThan(e20 / e40, 2.6, "ddim order")
            XCTAssertLessThan(d20, e20 / 5, "dpm++ vs ddim at 20 steps")
        }
    }

    /// SD's DDIM stops at alphas_cumprod[0]; `ddim-clean` (set_alpha_to_one) takes the last step
    /// to the clean endpoint. On data with directions of (almost) no variance, as images have
    /// (a flat background), the step-0 level still holds noise of std sigma_0 = sqrt(beta_0) =
    /// 0.029 there. Against the exact probability-flow map at 250 steps: ddim-clean lands on the
    /// clean endpoint, SD's DDIM on the step-0 level.
    func testCleanDDIMEndsOnTheCleanImage() throws {
        let flat = DiffusionFixture.Branch(mu: [0.5, -0.3, 0.1, 0.8], std: [0.3, 0.001, 0.2, 0.001])
        let model = DiffusionFixture.gaussianModel(flat, prediction: .epsilon, alphasCumprod: sd.alphasCumprod)
        let sdDDIM = try DDIM.stableDiffusion(schedule: sd, steps: 250, prediction: .epsilon)
        let clean = try DDIM(schedule: sd, steps: 250, prediction: .epsilon, spacing: .leading, stepsOffset: 1, setAlphaToOne: true)
        XCTAssertEqual(clean.timesteps, sdDDIM.timesteps)
        // The exact map for `flat` from the first timestep to the level (a, sigma).
        func exactFlat(toAlpha a: Double, sigma: Double) -> [Double] {
            let s = sdDDIM.timesteps[0], (aS, sS) = (sd.alpha(s), sd.sigma(s))
            return xT.scalars.enumerated().map { j, x in
                let mu = Double(flat.mu[j % 4]), c = Double(flat.std[j % 4])
                let z = (Double(x) - aS * mu) / (aS * aS * c * c + sS * sS).squareRoot()
                return a * mu + (a * a * c * c + sigma * sigma).squareRoot() * z
            }
        }
        let cleanEnd = exactFlat(toAlpha: 1, sigma: 0), stepZero = exactFlat(toAlpha: sd.alpha(0), sigma: sd.sigma(0))
        let a = try clean.sample(model, xT: xT, record: true), b = try sdDDIM.sample(model, xT: xT, record: true)
        XCTAssertEqual(a.trajectory?.last?.t, -1)
        XCTAssertEqual(b.trajectory?.last?.t, 0)
        let gap = maxError(Tensor(cleanEnd.map(Float.init), shape: xT.shape), stepZero)
        let (cleanErr, sdErr, sdFromClean) = (maxError(a.x, cleanEnd), maxError(b.x, stepZero), maxError(b.x, cleanEnd))
        print("ddim-clean: gap \(gap), clean error \(cleanErr), SD error \(sdErr), SD from the clean end \(sdFromClean)")
        XCTAssertGreaterThan(gap, 0.02, "the flat directions keep sigma_0 * z at step 0")
        XCTAssertLessThan(cleanErr, gap / 5, "ddim-clean ends on the clean image")
        XCTAssertLessThan(sdErr, gap / 5, "SD's DDIM ends on the step-0 level")
        XCTAssertGreaterThan(sdFromClean, gap / 2, "SD's DDIM keeps the step-0 noise")
    }

    func testRecordedStepsAndNFE() throws {
        let model = DiffusionFixture.gaussianModel(data, prediction: .epsilon, alphasCumprod: sd.alphasCumprod)
        let ddim = try DDIM.stableDiffusion(schedule: sd, steps: 4, prediction: .epsilon)
        XCTAssertEqual(ddim.timesteps, [751, 501, 251, 1])
        let r = try ddim.sample(model, xT: xT, record: true)
        // SD's DDIM ends on alphas_cumprod[0] (set_alpha_to_one false), i.e. at step 0.
        XCTAssertEqual(r.trajectory?.map(\.t), [751, 501, 251, 1, 0])
        XCTAssertEqual(r.nfe, 4)
        let dpm = try DPMSolverPP.stableDiffusion(schedule: sd, steps: 4, prediction: .epsilon)
        XCTAssertEqual(dpm.timesteps, [999, 749, 500, 250])
        let p = try dpm.sample(model, xT: xT, record: true)
        XCTAssertEqual(p.trajectory?.map(\.t), [999, 749, 500, 250, -1])
        XCTAssertNil(try dpm.sample(model, xT: xT).trajectory)
        XCTAssertEqual(dpm.name, "dpm-solver++(2M, 4, linspace, epsilon)")
        XCTAssertEqual(ddim.name, "ddim(4, leading+1, epsilon)")
    }

    /// Guidance on the model output plugs in through Flow's `guided` / `guidedBatched`: one
    /// network pass over [x; x] (text first, empty prompt second) gives the same samples.
    func testGuidanceOnTheModelOutput() throws {
        let other = DiffusionFixture.Branch(mu: [0, 0.2, -0.1, 0], std: [0.6, 0.7, 0.5, 0.8])
        let cond = DiffusionFixture.gaussianModel(data, prediction: .epsilon, alphasCumprod: sd.alphasCumprod)
        let uncond = DiffusionFixture.gaussianModel(other, prediction: .epsilon, alphasCumprod: sd.alphasCumprod)
        let doubled: DiffusionModel = { x2, t2 in
            let n = x2.shape[0] / 2
            XCTAssertEqual(t2.shape, [2 * n])
            return try Tensor.concat([try cond(try x2.slice(axis: 0, range: 0..<n), try t2.slice(axis: 0, range: 0..<n)),
                                      try uncond(try x2.slice(axis: 0, range: n..<(2 * n)), try t2.slice(axis: 0, range: n..<(2 * n)))], axis: 0)
        }
        let sampler = try DPMSolverPP.stableDiffusion(schedule: sd, steps: 8, prediction: .epsilon)
        let twoCalls = try sampler.sample(guided(cond: cond, uncond: uncond, scale: 3), xT: xT).x
        let oneCall = try sampler.sample(guidedBatched(doubled, scale: 3), xT: xT).x
        assertClose(oneCall, twoCalls.scalars, atol: 1e-6)
        // w = 1 is the conditional model alone, so guidance must have changed the result.
        let plain = try sampler.sample(cond, xT: xT).x
        XCTAssertGreaterThan(maxError(twoCalls, plain.scalars.map(Double.init)), 1e-2)
    }

    func testSamplersRunWithoutGradients() throws {
        var enabled: [Bool] = []
        let w = Tensor([0.5], shape: [1], requiresGrad: true)
        let model: DiffusionModel = { x, _ in enabled.append(GradMode.isEnabled); return try x * w }
        let out = try DPMSolverPP.stableDiffusion(schedule: sd, steps: 3, prediction: .epsilon).sample(model, xT: xT).x
        XCTAssertEqual(enabled, [false, false, false])
        XCTAssertFalse(out.requiresGrad)
    }

    func testErrorsNameWhatIsWrong() throws {
        assertThrows(["unknown schedule 'sqrt_linear'", "scaled_linear", "linear", "cosine", "squaredcos_cap_v2"]) {
            _ = try BetaSchedule(name: "sqrt_linear")
        }
        XCTAssertEqual(try BetaSchedule(name: "squaredcos_cap_v2"), .cosine)
        XCTAssertEqual(try BetaSchedule(name: "cosine"), .cosine)
        assertThrows(["unknown prediction type 'sample'", "epsilon", "v_prediction"]) { _ = try DiffusionPrediction(name: "sample") }
        assertThrows(["unknown spacing 'karras'", "leading", "linspace", "trailing"]) { _ = try TimestepSpacing(name: "karras") }
        assertThrows(["scaled_linear", "beta_start", "0.5"]) {
            _ = try VPSchedule(kind: .scaledLinear, trainSteps: 1000, betaStart: 0.5, betaEnd: 0.012)
        }
        assertThrows(["trainSteps", "1"]) { _ = try VPSchedule(kind: .cosine, trainSteps: 1, betaStart: 0, betaEnd: 0) }
        assertThrows(["ddim", "steps must be in 1...1000", "0"]) { _ = try DDIM.stableDiffusion(schedule: sd, steps: 0, prediction: .epsilon) }
        assertThrows(["dpm-solver++", "1001"]) { _ = try DPMSolverPP.stableDiffusion(schedule: sd, steps: 1001, prediction: .epsilon) }
        assertThrows(["dpm-solver++", "repeat a timestep"]) { _ = try DPMSolverPP.stableDiffusion(schedule: sd, steps: 1000, prediction: .epsilon) }
        assertThrows(["ddim", "outside 0..<1000", "1000"]) {
            _ = try DDIM(schedule: sd, steps: 2, prediction: .epsilon, spacing: .leading, stepsOffset: 500, setAlphaToOne: false)
        }
        let ddim = try DDIM.stableDiffusion(schedule: sd, steps: 2, prediction: .epsilon)
        assertThrows(["diffusion model", "[2, 3]", "[2, 4]", "step 501"]) {
            _ = try ddim.sample({ _, _ in Tensor.zeros([2, 3]) }, xT: xT)
        }
        assertThrows(["ddim", "x_T", "non-empty"]) { _ = try ddim.sample({ x, _ in x }, xT: Tensor.zeros([0, 4])) }
    }

    /// InstaFlow's U-Net timestep for flow time t is 1000 (1 - t): its Euler grid t_i = i / N
    /// feeds (1 - i / N) * 1000.
    func testFlowTimeToDiffusionStep() throws {
        XCTAssertEqual(diffusionStep(flowTime: 0, trainSteps: 1000), 1000)
        XCTAssertEqual(diffusionStep(flowTime: 1, trainSteps: 1000), 0)
        XCTAssertEqual(diffusionStep(flowTime: 0.25, trainSteps: 1000), 750)
        for i in 0..<25 {
            let t = Float(i) / 25
            XCTAssertEqual(diffusionStep(flowTime: t, trainSteps: 1000), (1 - Float(i) / 25) * 1000, accuracy: 1e-4)
            XCTAssertEqual(flowTime(diffusionStep: diffusionStep(flowTime: t, trainSteps: 1000), trainSteps: 1000), t, accuracy: 1e-6)
        }
        let steps = diffusionSteps(flowTimes: Tensor([0, 0.5, 0.96, 1], shape: [4]), trainSteps: 1000)
        assertClose(steps, [1000, 500, 40, 0], atol: 1e-4)
        XCTAssertEqual(steps.shape, [4])
    }
}
