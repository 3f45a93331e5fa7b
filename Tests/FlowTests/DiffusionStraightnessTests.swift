import XCTest
import Autograd
import TensorCore
import Flow
import TestSupport

/// A diffusion teacher's path measured as a flow's (`VPSchedule.flowCoordinates`).
final class DiffusionStraightnessTests: XCTestCase {
    let schedule = VPSchedule.stableDiffusion

    /// The exact eps of data that is one point c: eps = (x_s - alpha c) / sigma.
    func pointModel(_ c: Float) -> DiffusionModel {
        { x, s in
            let k = Int(s.scalars[0])
            return (x - Float(self.schedule.alpha(k)) * c) * Float(1 / self.schedule.sigma(k))
        }
    }

    /// The exact eps of data +-1 with equal weight, per dimension: E[x1 | x_s] = tanh(alpha x / sigma^2).
    func twoPointModel() -> DiffusionModel {
        { x, s in
            let k = Int(s.scalars[0])
            let a = Float(self.schedule.alpha(k)), sg = Float(self.schedule.sigma(k))
            let mean = Tensor(x.scalars.map { tanh(a * $0 / (sg * sg)) }, shape: x.shape)
            return try (x - a * mean) * (1 / sg)
        }
    }

    func testOnePointDataIsAStraightPathInFlowCoordinates() throws {
        let xT = randn([4, 6], seed: 1)
        let r = try DDIM.stableDiffusion(schedule: schedule, steps: 25, prediction: .epsilon).sample(pointModel(0.7), xT: xT, record: true)
        let path = try schedule.flowCoordinates(r.trajectory!)
        XCTAssertEqual(path.count, 26)
        // t increases from x_T's (alpha_961 / (alpha + sigma), about 0.08) towards 1.
        XCTAssertEqual(Double(path[0].t), schedule.alpha(961) / (schedule.alpha(961) + schedule.sigma(961)), accuracy: 1e-6)
        XCTAssertGreaterThan(path.last!.t, 0.97)
        let s = try straightness(of: path)
        // Float32 states divided by small dt: rounding, not curvature, is what is left.
        XCTAssertLessThan(s.perDimension, 1e-6)
        // The path in flow coordinates is x = t c + (1 - t) eps with eps = x_T / (alpha + sigma) * ... :
        // at every state, (x - t c) / (1 - t) is the same noise.
        let e0 = try (path[0].x - path[0].t * 0.7) * (1 / (1 - path[0].t))
        for p in path.dropLast() {
            assertClose(try (p.x - p.t * 0.7) * (1 / (1 - p.t)), e0.scalars, atol: 2e-4)
        }
    }

    func testTwoPointDataBendsThePath() throws {
        let xT = randn([64, 4], seed: 2)
        let r = try DDIM.stableDiffusion(schedule: schedule, steps: 50, prediction: .epsilon).sample(twoPointModel(), xT: xT, record: true)
        let s = try straightness(of: try schedule.flowCoordinates(r.trajectory!))
        // Each coordinate first follows the mean 0, then commits to +-1: far from straight.
        XCTAssertGreaterThan(s.perDimension, 0.05)
        // SD's DDIM ends at step 0 (alpha^2 = 0.99915, sigma = 0.029), not at clean data: x = alpha (+-1) + sigma eps.
        let a0 = Float(schedule.alpha(0)), s0 = Float(schedule.sigma(0))
        XCTAssertTrue(r.x.scalars.allSatisfy { abs(abs($0) - a0) < 5 * s0 }, "samples end near +-alpha_0")
    }

    func testStepsOutsideTheScheduleAreRefused() {
        let x = randn([1, 2], seed: 3)
        XCTAssertThrowsError(try schedule.flowCoordinates([(t: 1000, x: x)])) { XCTAssertTrue("\($0)".contains("1000"), "\($0)") }
        XCTAssertThrowsError(try schedule.flowCoordinates([(t: 0.5, x: x)]))
    }
}
