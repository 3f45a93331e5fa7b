import XCTest
import TestSupport
import Autograd
import TensorCore
import Flow

final class TimeSamplerTests: XCTestCase {
    func moments(_ xs: [Float]) -> (mean: Double, variance: Double) {
        let m = xs.map(Double.init).reduce(0, +) / Double(xs.count)
        return (m, xs.map { (Double($0) - m) * (Double($0) - m) }.reduce(0, +) / Double(xs.count))
    }

    func testUniform() throws {
        var rng = RNG(seed: 1)
        let t = try TimeSampler.uniform().sample(100_000, rng: &rng).scalars
        XCTAssertTrue(t.allSatisfy { $0 >= 0 && $0 < 1 })
        let (m, v) = moments(t)
        XCTAssertEqual(m, 0.5, accuracy: 0.005)
        XCTAssertEqual(v, 1.0 / 12, accuracy: 0.002)
        let te = try TimeSampler.uniform(eps: 1e-3).sample(100_000, rng: &rng).scalars
        XCTAssertTrue(te.allSatisfy { $0 >= 1e-3 && $0 < 1 })
        XCTAssertEqual(rng.counter, 2)  // one stream per call
    }

    func testLogitNormal() throws {
        var rng = RNG(seed: 2)
        let t = try TimeSampler.logitNormal(mean: 0.5, std: 0.8).sample(100_000, rng: &rng).scalars
        XCTAssertTrue(t.allSatisfy { $0 > 0 && $0 < 1 })
        let logits = t.map { Foundation.log(Double($0) / (1 - Double($0))) }.map(Float.init)
        let (m, v) = moments(logits)
        XCTAssertEqual(m, 0.5, accuracy: 0.01)
        XCTAssertEqual(v.squareRoot(), 0.8, accuracy: 0.01)
    }

    func testFixedAndDiscrete() throws {
        var rng = RNG(seed: 3)
        XCTAssertEqual(try TimeSampler.t0.sample(5, rng: &rng).scalars, [0, 0, 0, 0, 0])
        XCTAssertEqual(rng.counter, 0)
        XCTAssertEqual(try TimeSampler.fixed(0.3).sample(2, rng: &rng).scalars, [0.3, 0.3])
        let t = try TimeSampler.discrete(steps: 4).sample(40_000, rng: &rng).scalars
        var counts = [Float: Int]()
        for x in t { counts[x, default: 0] += 1 }
        XCTAssertEqual(Set(counts.keys), [0, 0.25, 0.5, 0.75])
        for (_, c) in counts { XCTAssertEqual(Double(c), 10_000, accuracy: 400) }
        XCTAssertEqual(try TimeSampler.discrete(steps: 1).sample(3, rng: &rng).scalars, [0, 0, 0])
    }

    func testDeterminismAndErrors() throws {
        for sampler: TimeSampler in [.uniform(), .logitNormal(), .discrete(steps: 3), .uniform(eps: 0.1)] {
            var a = RNG(seed: 42), b = RNG(seed: 42), c = RNG(seed: 43)
            let x = try sampler.sample(64, rng: &a).scalars
            XCTAssertEqual(x, try sampler.sample(64, rng: &b).scalars)
            XCTAssertNotEqual(x, try sampler.sample(64, rng: &c).scalars)
            XCTAssertNotEqual(x, try sampler.sample(64, rng: &a).scalars)  // the next stream differs
        }
        var rng = RNG(seed: 0)
        XCTAssertThrowsError(try TimeSampler.discrete(steps: 0).sample(1, rng: &rng))
        XCTAssertThrowsError(try TimeSampler.uniform(eps: 1).sample(1, rng: &rng))
        XCTAssertThrowsError(try TimeSampler.fixed(1.5).sample(1, rng: &rng))
        XCTAssertThrowsError(try TimeSampler.logitNormal(mean: 0, std: -1).sample(1, rng: &rng))
    }
}
