import XCTest
import Autograd
import TensorCore
import Flow
import TestSupport

final class SolverTests: XCTestCase {
    /// Observed order log2(e(N) / e(2N)) on the linear system, for N and 2N steps.
    func observedOrder(_ make: (Int) -> ODESolver, _ n: Int) throws -> (Double, Double, Double) {
        let exact = linear.exact(linearX0)
        let e1 = maxError(try make(n).solve(linear.velocity, x0: linearX0).x, exact)
        let e2 = maxError(try make(2 * n).solve(linear.velocity, x0: linearX0).x, exact)
        return (e1, e2, Foundation.log2(e1 / e2))
    }

    func testOrderOfConvergence() throws {
        let cases: [(String, (Int) -> ODESolver, Int, Double)] = [
            ("euler", { Euler(steps: $0) }, 32, 1),
            ("heun", { Heun(steps: $0) }, 16, 2),
            ("heun finalEuler", { Heun(steps: $0, finalEuler: true) }, 16, 2),
            ("rk4", { RK4(steps: $0) }, 4, 4),
        ]
        for (name, make, n, order) in cases {
            let (e1, e2, p) = try observedOrder(make, n)
            print("\(name): error \(e1) at N=\(n), \(e2) at N=\(2 * n), observed order \(p)")
            XCTAssertEqual(p, order, accuracy: 0.15 * order, name)
        }
    }

    func testNFEAndTrajectory() throws {
        let v = linear.velocity
        let e = try Euler(steps: 5).solve(v, x0: linearX0, record: true)
        XCTAssertEqual(e.nfe, 5)
        XCTAssertEqual(e.trajectory?.map { $0.t }, [0, 0.2, 0.4, 0.6, 0.8, 1])
        XCTAssertTrue(e.trajectory!.last!.x === e.x)
        XCTAssertEqual(try Heun(steps: 5).solve(v, x0: linearX0).nfe, 10)
        XCTAssertEqual(try Heun(steps: 5, finalEuler: true).solve(v, x0: linearX0).nfe, 9)
        XCTAssertEqual(try RK4(steps: 5).solve(v, x0: linearX0).nfe, 20)
        XCTAssertNil(try RK4(steps: 5).solve(v, x0: linearX0).trajectory)
        // The grid of a sub-interval: RectifiedFlow's t_i = i/N (1 - eps) + eps.
        let sub = try Euler(steps: 2).solve(v, x0: linearX0, from: 0.001, to: 1, record: true)
        XCTAssertEqual(sub.trajectory!.map { $0.t }, [0.001, 0.5005, 1])
    }

    func testConstantFieldIsExactInOneStep() throws {
        let c = Tensor([0.5, -2, 3, 1, 0, -1], shape: [3, 2])
        let v: Velocity = { x, _ in try c + Tensor.zeros(x.shape) }
        let expected = try (linearX0 + c).scalars
        for solver: ODESolver in [Euler(steps: 1), Heun(steps: 1), RK4(steps: 1), DormandPrince(rtol: 1e-5, atol: 1e-5)] {
            assertClose(try solver.solve(v, x0: linearX0).x, expected, atol: 1e-6, solver.name)
        }
    }

    func testTimeDependentFields() throws {
        let x0 = linearX0
        // v = t: Euler with N steps lands at x0 + (1 - 1/N) / 2; Heun (trapezoid) is exact.
        let vt: Velocity = { x, t in try Tensor.zeros(x.shape) + t.reshaped([-1, 1]) }
        assertClose(try Euler(steps: 4).solve(vt, x0: x0).x, x0.scalars.map { $0 + 0.375 }, atol: 1e-6, "euler v=t")
        assertClose(try Heun(steps: 1).solve(vt, x0: x0).x, x0.scalars.map { $0 + 0.5 }, atol: 1e-6, "heun v=t")
        // v = 4 t^3: RK4 is Simpson's rule in t, exact for cubics.
        let vc: Velocity = { x, t in
            let t3 = try (t * t * t).reshaped([-1, 1]) * 4
            return try Tensor.zeros(x.shape) + t3
        }
        assertClose(try RK4(steps: 1).solve(vc, x0: x0).x, x0.scalars.map { $0 + 1 }, atol: 1e-6, "rk4 v=4t^3")
        // v = 2 t x: x(1) = e x0; a field depending on both x and t.
        let vx: Velocity = { x, t in try x * t.reshaped([-1, 1]) * 2 }
        let exact = x0.scalars.map { Double($0) * M_E }
        XCTAssertLessThan(maxError(try RK4(steps: 16).solve(vx, x0: x0).x, exact), 1e-5)
        XCTAssertLessThan(maxError(try DormandPrince(rtol: 1e-6, atol: 1e-6).solve(vx, x0: x0).x, exact), 1e-5)
    }

    /// NFE of scipy's RK45 on the same problem:
    /// solve_ivp(f, (0, 1), x0.ravel(), method='RK45', rtol=tol, atol=tol).nfev
    /// with f(t, y) = (a[:, None] * y.reshape(3, 2) + b[:, None] * t).ravel(),
    /// x0 = [[1, -.5], [.25, 2], [-1.5, .75]], a = [-1, -2, .5], b = [1, -1, 2]:
    /// 20 (tol 1e-3, 3 steps), 32 (1e-5, 5 steps), 68 (1e-7, 11 steps); max error 1.4e-3, 7.2e-6.
    func testDormandPrinceMatchesScipyRK45() throws {
        let exact = linear.exact(linearX0)
        for (tol, nfe, steps, scipyErr) in [(1e-3, 20, 3, 1.4e-3), (1e-5, 32, 5, 7.2e-6)] {
            let r = try DormandPrince(rtol: tol, atol: tol).solve(linear.velocity, x0: linearX0, record: true)
            let err = maxError(r.x, exact)
            print("dopri5 tol \(tol): NFE \(r.nfe), steps \(r.steps), rejected \(r.rejectedSteps), max error \(err)")
            XCTAssertEqual(r.nfe, nfe, "tol \(tol)")
            XCTAssertEqual(r.steps, steps, "tol \(tol)")
            XCTAssertEqual(r.nfe, 2 + 6 * (r.steps + r.rejectedSteps))
            XCTAssertEqual(err, scipyErr, accuracy: 0.1 * scipyErr + 1e-6)
            XCTAssertEqual(r.trajectory?.count, r.steps + 1)
            XCTAssertEqual(r.trajectory?.last?.t, 1)
        }
    }

    /// A field that forces rejected steps: y' = -5 (y - sin 8t). scipy, same settings:
    /// f = lambda t, y: -5 * (y - np.sin(8 * t)); x0 = [1, -.5, .25, 2]
    /// solve_ivp(f, (0, 1), x0, method='RK45', rtol=tol, atol=tol): nfev 44 (tol 1e-3: 6 steps,
    /// 1 rejected), 98 (tol 1e-5: 13 steps, 3 rejected).
    func testDormandPrinceRejectionsMatchScipyRK45() throws {
        let x0 = Tensor([1, -0.5, 0.25, 2], shape: [2, 2])
        let v: Velocity = { x, t in
            let s = Tensor(t.scalars.map { Foundation.sin(8 * $0) }, shape: [t.count, 1])
            return try (x - s) * -5
        }
        // Exact: y = (y0 + 40/89) e^{-5t} + (25 sin 8t - 40 cos 8t) / 89.
        let exact = x0.scalars.map { y0 in
            (Double(y0) + 40.0 / 89) * Foundation.exp(-5.0) + (25 * Foundation.sin(8.0) - 40 * Foundation.cos(8.0)) / 89
        }
        for (tol, nfe, steps, rejected) in [(1e-3, 44, 6, 1), (1e-5, 98, 13, 3)] {
            let r = try DormandPrince(rtol: tol, atol: tol).solve(v, x0: x0)
            print("dopri5 stiffish tol \(tol): NFE \(r.nfe), steps \(r.steps), rejected \(r.rejectedSteps), error \(maxError(r.x, exact))")
            XCTAssertEqual(r.nfe, nfe); XCTAssertEqual(r.steps, steps); XCTAssertEqual(r.rejectedSteps, rejected)
            XCTAssertLessThan(maxError(r.x, exact), 10 * tol)
        }
    }

    func testDormandPrinceAccuracyFollowsTolerance() throws {
        let exact = linear.exact(linearX0)
        var lastNFE = 0
        for tol in [1e-2, 1e-3, 1e-4, 1e-5, 1e-6] {
            let r = try DormandPrince(rtol: tol, atol: tol).solve(linear.velocity, x0: linearX0)
            let err = maxError(r.x, exact)
            print("dopri5 tol \(tol): NFE \(r.nfe), max error \(err)")
            XCTAssertLessThan(err, 10 * tol)  // the global error tracks the local tolerance
            XCTAssertGreaterThanOrEqual(r.nfe, lastNFE)
            lastNFE = r.nfe
        }
    }

    /// The error norm sums in fixed blocks, so steps (and results) do not depend on threads.
    func testDormandPrinceIsIndependentOfThreadCount() throws {
        let x0 = randn([4, 10_000], seed: 9)
        let v: Velocity = { x, t in try x * (t.reshaped([-1, 1]) - 2) }
        let old = Runtime.threads
        defer { Runtime.threads = old }
        var results: [SolveResult] = []
        for threads in [1, 2] {
            Runtime.threads = threads
            results.append(try DormandPrince(rtol: 1e-4, atol: 1e-4).solve(v, x0: x0))
        }
        XCTAssertEqual(results[0].nfe, results[1].nfe)
        XCTAssertEqual(results[0].x.scalars, results[1].x.scalars)
    }

    func testBackwardIntegrationReturnsToStart() throws {
        let fwd = try DormandPrince(rtol: 1e-6, atol: 1e-6).solve(linear.velocity, x0: linearX0)
        let back = try DormandPrince(rtol: 1e-6, atol: 1e-6).solve(linear.velocity, x0: fwd.x, from: 1, to: 0)
        assertClose(back.x, linearX0.scalars, atol: 1e-4, "dopri5 round trip")
        let eb = try RK4(steps: 20).solve(linear.velocity, x0: try RK4(steps: 20).solve(linear.velocity, x0: linearX0).x,
                                          from: 1, to: 0)
        assertClose(eb.x, linearX0.scalars, atol: 1e-4, "rk4 round trip")
    }

    func testErrors() throws {
        let v = linear.velocity
        XCTAssertThrowsError(try DormandPrince(rtol: 1e-7, atol: 1e-7, maxSteps: 3).solve(v, x0: linearX0)) { e in
            XCTAssertTrue("\(e)".contains("maxSteps"), "\(e)")
        }
        let nan: Velocity = { x, _ in x * Float.nan }
        XCTAssertThrowsError(try DormandPrince(rtol: 1e-5, atol: 1e-5).solve(nan, x0: linearX0)) { e in
            XCTAssertTrue("\(e)".contains("non-finite"), "\(e)")
        }
        let wrong: Velocity = { x, _ in try x.reshaped([-1]) }
        for solver: ODESolver in [Euler(steps: 2), Heun(steps: 2), RK4(steps: 2), DormandPrince(rtol: 1e-5, atol: 1e-5)] {
            XCTAssertThrowsError(try solver.solve(wrong, x0: linearX0)) { e in
                XCTAssertEqual("\(e)", "velocity: returned shape [6] for input of shape [3, 2]")
            }
        }
        XCTAssertThrowsError(try Euler(steps: 0).solve(v, x0: linearX0))
        XCTAssertThrowsError(try Euler(steps: 1).solve(v, x0: Tensor(scalar: 1)))
        XCTAssertThrowsError(try DormandPrince(rtol: 0, atol: 0).solve(v, x0: linearX0))
    }

    func testSolversRecordNoGraph() throws {
        let w = Tensor([0.5], shape: [1], requiresGrad: true)
        let v: Velocity = { x, _ in try x * w }
        for solver: ODESolver in [Euler(steps: 2), Heun(steps: 2), RK4(steps: 2), DormandPrince(rtol: 1e-5, atol: 1e-5)] {
            let r = try solver.solve(v, x0: linearX0)
            XCTAssertFalse(r.x.isRecorded, solver.name)
        }
    }
}
