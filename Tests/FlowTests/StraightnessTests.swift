import XCTest
import Autograd
import TensorCore
import Flow
import TestSupport

final class StraightnessTests: XCTestCase {
    func testConstantFieldIsStraight() throws {
        let c = Tensor([0.5, -2, 3, 1, 0, -1, 2, 2], shape: [2, 4])
        let v: Velocity = { x, _ in try c + Tensor.zeros(x.shape) }
        let x0 = randn([2, 4], seed: 3)
        let (s, r) = try measureStraightness(v, x0: x0, steps: 10)
        XCTAssertEqual(s.value, 0, accuracy: 1e-10)
        XCTAssertEqual(s.perItem.count, 2)
        XCTAssertEqual(try straightness(v, x0: x0, steps: 3), 0, accuracy: 1e-10)
        XCTAssertEqual(r.nfe, 10)
        // One Euler step is exact for a straight flow.
        assertClose(try Euler(steps: 1).solve(v, x0: x0).x, try (x0 + c).scalars, atol: 1e-6)
        assertClose(r.x, try (x0 + c).scalars, atol: 1e-5)
    }

    /// v = b_i t (item i, all dimensions): Euler velocities are b i/N, so
    /// S = ||b||^2 * variance of {0, 1/N, ..., (N-1)/N} = ||b||^2 (N^2 - 1) / (12 N^2) → ||b||^2 / 12.
    func testCurvedFieldMatchesHandComputedValue() throws {
        let b: [Float] = [1, -3]
        let dim = 5
        let bt = Tensor(b, shape: [2, 1])
        let v: Velocity = { x, t in try Tensor.zeros(x.shape) + bt * t.reshaped([-1, 1]) }
        let x0 = randn([2, dim], seed: 4)
        for n in [1, 4, 10] {
            let (s, r) = try measureStraightness(v, x0: x0, steps: n, record: true)
            let f = Double(n * n - 1) / Double(12 * n * n)
            let expected = b.map { Double(dim) * Double($0 * $0) * f }
            XCTAssertEqual(s.perItem[0], expected[0], accuracy: 1e-5)
            XCTAssertEqual(s.perItem[1], expected[1], accuracy: 1e-5)
            XCTAssertEqual(s.value, (expected[0] + expected[1]) / 2, accuracy: 1e-5)
            XCTAssertEqual(s.perDimension, s.value / Double(dim), accuracy: 1e-12)
            XCTAssertEqual(s.dimension, dim)
            // The trajectory-based estimate agrees on an Euler path.
            let st = try straightness(of: r.trajectory!)
            XCTAssertEqual(st.value, s.value, accuracy: 1e-4)
        }
    }

    /// v = -x: x_t = x0 e^{-t}, S = ||x0||^2 ∫ (e^{-1} - 1 + e^{-t})^2 dt
    ///   = ||x0||^2 [a^2 + 2a(1 - e^{-1}) + (1 - e^{-2}) / 2], a = e^{-1} - 1.
    func testExponentialFieldConvergesToClosedForm() throws {
        let v: Velocity = { x, _ in -x }
        let x0 = randn([3, 4], seed: 5)
        let a = Foundation.exp(-1.0) - 1
        let k = a * a + 2 * a * (1 - Foundation.exp(-1.0)) + (1 - Foundation.exp(-2.0)) / 2
        let norms = (0..<3).map { i in (0..<4).map { Double(x0.scalars[i * 4 + $0]) }.map { $0 * $0 }.reduce(0, +) }
        let exact = norms.map { $0 * k }.reduce(0, +) / 3
        let s = try straightness(v, x0: x0, steps: 1000)
        XCTAssertEqual(s, exact, accuracy: 2e-3 * exact)
        XCTAssertGreaterThan(s, 0)
        let rk = try RK4(steps: 200).solve(v, x0: x0, record: true)
        XCTAssertEqual(try straightness(of: rk.trajectory!).value, exact, accuracy: 2e-3 * exact)
    }

    func testErrors() throws {
        XCTAssertThrowsError(try straightness({ x, _ in x }, x0: linearX0, steps: 0))
        XCTAssertThrowsError(try straightness(of: [(t: 0, x: linearX0)]))
        XCTAssertThrowsError(try straightness(of: [(t: 0, x: linearX0), (t: 0, x: linearX0)]))
    }
}
