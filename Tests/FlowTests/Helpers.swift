import XCTest
import TestSupport
import Autograd
import TensorCore
import Flow

/// A per-item linear system v(x, t) = a_i * x + b_i * t (a, b one value per item). Its exact
/// solution from x(0) = x0 is x(1) = e^a x0 + b (e^a - 1 - a) / a^2.
struct LinearField {
    let a: [Float]
    let b: [Float]

    var velocity: Velocity {
        let at = Tensor(a, shape: [a.count, 1]), bt = Tensor(b, shape: [b.count, 1])
        return { x, t in try (at * x) + (bt * t.reshaped([-1, 1])) }
    }

    func exact(_ x0: Tensor) -> [Double] {
        let d = x0.count / a.count
        return (0..<x0.count).map { j in
            let i = j / d, ai = Double(a[i]), bi = Double(b[i])
            return Foundation.exp(ai) * Double(x0.scalars[j]) + bi * (Foundation.exp(ai) - 1 - ai) / (ai * ai)
        }
    }
}

let linear = LinearField(a: [-1, -2, 0.5], b: [1, -1, 2])
let linearX0 = Tensor([1.0, -0.5, 0.25, 2.0, -1.5, 0.75], shape: [3, 2])

func maxError(_ x: Tensor, _ exact: [Double]) -> Double {
    zip(x.scalars, exact).map { Swift.abs(Double($0) - $1) }.max() ?? 0
}
