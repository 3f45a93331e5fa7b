import XCTest
import Autograd
import TensorCore
import Flow
import TestSupport

/// Parity with diffusers (Fixtures/diffusion.json, scripts/make_diffusion_fixtures.py): the
/// schedules, the timesteps each scheduler picks, and whole guided trajectories.
final class DiffusionParityTests: XCTestCase {
    static let fixture = Result { try DiffusionFixture.load() }

    func schedule(_ name: String, _ f: DiffusionFixture) throws -> VPSchedule {
        guard let s = f.schedules[name] else { throw FlowError(op: "fixture", "no schedule '\(name)'") }
        return try VPSchedule(kind: try BetaSchedule(name: name), trainSteps: s.alphasCumprod.count,
                              betaStart: s.betaStart, betaEnd: s.betaEnd)
    }

    /// Ours are Double; diffusers' are float32. Its cumulative product drifts from the exact
    /// value by ~1e-7 per factor (~1e-6 relative over 1,000 factors, printed), and rounding a
    /// beta near 1 to float32 moves 1 - beta by up to 2^-24 beta / (1 - beta) relative: the
    /// cosine schedule's clipped beta 0.999 makes that 6e-5. The tolerance is 1e-5 plus that
    /// term. A wrong schedule (e.g. linear for scaled_linear) is off by > 1e-1.
    func testAlphasCumprodMatchDiffusers() throws {
        let f = try Self.fixture.get()
        XCTAssertEqual(Set(f.schedules.keys), ["scaled_linear", "linear", "squaredcos_cap_v2"])
        for (name, ref) in f.schedules {
            let ours = try schedule(name, f)
            XCTAssertEqual(ours.alphasCumprod.count, 1000, name)
            let rel = zip(ours.alphasCumprod, ref.alphasCumprod).map { Swift.abs($0 - $1) / $1 }.max() ?? .infinity
            let betaRounding = ours.betas.map { $0 / (1 - $0) }.max()! * 0x1p-24
            print("alphas_cumprod \(name): max relative difference to diffusers \(rel), allowed \(1e-5 + betaRounding)")
            XCTAssertLessThan(rel, 1e-5 + betaRounding, name)
            // alpha, sigma and lambda follow from alphas_cumprod: alpha^2 + sigma^2 = 1 and
            // lambda = log(alpha / sigma) falls with the step.
            for s in [0, 1, 500, 998, 999] {
                XCTAssertEqual(ours.alpha(s) * ours.alpha(s) + ours.sigma(s) * ours.sigma(s), 1, accuracy: 1e-12)
                XCTAssertEqual(ours.alpha(s), ref.alphasCumprod[s].squareRoot(), accuracy: 1e-5 * ours.alpha(s))
                XCTAssertEqual(ours.lambda(s), log(ours.alpha(s) / ours.sigma(s)), accuracy: 1e-12)
            }
            XCTAssertGreaterThan(ours.lambda(0), ours.lambda(999))
            if ours.kind == .cosine {
                XCTAssertEqual(ours.betas.last, VPSchedule.cosineMaxBeta, "the cosine schedule's last beta is clipped")
                XCTAssertLessThan(ours.betas[998], VPSchedule.cosineMaxBeta)
            }
        }
    }

    func testTimestepsMatchDiffusers() throws {
        let f = try Self.fixture.get()
        let sd = try schedule("scaled_linear", f)
        var checked = 0
        for c in try f.cases("timesteps") {
            let kind = c["sampler"] as? String, n = (c["steps"] as? Int) ?? -1
            let spacing = try TimestepSpacing(name: c["spacing"] as? String ?? "?")
            let offset = (c["steps_offset"] as? Int) ?? -1
            let want = (c["timesteps"] as? [Int]) ?? []
            let sampler: DiffusionSampler = kind == "ddim"
                ? try DDIM(schedule: sd, steps: n, prediction: .epsilon, spacing: spacing, stepsOffset: offset, setAlphaToOne: false)
                : try DPMSolverPP(schedule: sd, steps: n, prediction: .epsilon, spacing: spacing, stepsOffset: offset)
            XCTAssertEqual(sampler.timesteps, want, "\(sampler.name)")
            checked += 1
        }
        XCTAssertEqual(checked, 54)
    }

    /// Whole trajectories, every state, under the fixture rule |a - b| <= tol (|b| + mean|b|).
    /// diffusers works in float32 (schedule, coefficients, sums); we apply Double coefficients
    /// to Float tensors. Where both are well conditioned they agree to ~2e-6 (printed), so
    /// tol = 2e-5. With epsilon prediction the first step forms x0 = (x - sigma m) / alpha, and
    /// diffusers' float32 result carries an error of ~2^-23 |x| sigma / alpha: on the cosine
    /// schedule at step 999 (alpha = 5e-5) that is 2e-3 of |x|, an error of the reference, not
    /// of ours. So tol grows by 4 * 2^-23 * sigma / alpha at the first timestep (4: |x| and the
    /// guided output, w = 2, both enter). A sampler that differs in any formula (order, final
    /// step, an off-by-one timestep) is off by > 1e-3 on the well-conditioned cases.
    func testTrajectoriesMatchDiffusers() throws {
        let f = try Self.fixture.get()
        var worst: [String: Double] = [:]
        for c in try f.cases("trajectories") {
            let kind = c["sampler"] as? String ?? "?", n = (c["steps"] as? Int) ?? -1
            let scheduleName = c["schedule"] as? String ?? "?"
            let prediction = try DiffusionPrediction(name: c["prediction"] as? String ?? "?")
            let states = (c["states"] as? [[NSNumber]] ?? []).map { $0.map(\.doubleValue) }
            let schedule = try schedule(scheduleName, f)
            let acp = try XCTUnwrap(f.schedules[scheduleName]).alphasCumprod
            let sampler: DiffusionSampler = kind == "ddim"
                ? try DDIM.stableDiffusion(schedule: schedule, steps: n, prediction: prediction)
                : try DPMSolverPP.stableDiffusion(schedule: schedule, steps: n, prediction: prediction)
            let seen = Box<[Int]>([])
            let model = guided(cond: DiffusionFixture.gaussianModel(f.cond, prediction: prediction, alphasCumprod: acp, seen: seen),
                               uncond: DiffusionFixture.gaussianModel(f.uncond, prediction: prediction, alphasCumprod: acp),
                               scale: f.guidance)
            let label = "\(sampler.name) \(scheduleName)"
            let result = try sampler.sample(model, xT: f.xT, record: true)
            XCTAssertEqual(seen.value, c["model_timesteps"] as? [Int], "\(label): model timesteps")
            XCTAssertEqual(result.nfe, n, label)
            let traj = try XCTUnwrap(result.trajectory, label)
            XCTAssertEqual(traj.count, states.count, "\(label): trajectory length")
            XCTAssertTrue(traj.last!.x === result.x, label)
            var err = 0.0
            for (state, want) in zip(traj, states) { err = max(err, fixtureError(state.x.scalars, want)) }
            let first = sampler.timesteps[0]
            let conditioning = prediction == .epsilon ? 4 * 0x1p-23 * schedule.sigma(first) / schedule.alpha(first) : 0
            XCTAssertLessThan(err, 2e-5 + conditioning, label)
            let key = "\(scheduleName) \(prediction.rawValue)"
            worst[key] = max(worst[key] ?? 0, err)
        }
        print("trajectories: worst relative error to diffusers per schedule and prediction \(worst)")
        XCTAssertEqual(worst.count, 4)
    }
}
