import XCTest
import Autograd
import NN
import TensorCore
import TestSupport

/// A two-linear block and a small network of them, to exercise dotted names.
final class TinyBlock: Module {
    let fc1: Linear, fc2: Linear
    var isTraining = true
    init(_ d: Int, rng: inout RNG) {
        fc1 = Linear(d, 2 * d, rng: &rng)
        fc2 = Linear(2 * d, d, bias: false, rng: &rng)
    }
    func children() -> [(String, Module)] { [("fc1", fc1), ("fc2", fc2)] }
    func callAsFunction(_ x: Tensor) throws -> Tensor { try x + fc2(fc1(x)) }
}

final class TinyNet: Module {
    let blocks: ModuleList<TinyBlock>
    let head: Sequential
    let scale: Tensor
    var isTraining = true
    init(rng: inout RNG) {
        blocks = ModuleList([TinyBlock(3, rng: &rng), TinyBlock(3, rng: &rng)])
        head = Sequential([Linear(3, 4, rng: &rng), Linear(4, 2, rng: &rng)])
        scale = Init.constant([2], 1)
    }
    func ownParameters() -> [(String, Tensor)] { [("scale", scale)] }
    func children() -> [(String, Module)] { [("blocks", blocks), ("head", head)] }
    func callAsFunction(_ x: Tensor) throws -> Tensor {
        var h = x
        for b in blocks.modules { h = try b(h) }
        return try head(h) * scale
    }
}

final class ModuleTests: XCTestCase {
    func testNamesAreDottedAndStable() {
        var rng = RNG(seed: 1)
        let net = TinyNet(rng: &rng)
        let names = net.namedParameters().map { $0.0 }
        XCTAssertEqual(names, [
            "scale",
            "blocks.0.fc1.weight", "blocks.0.fc1.bias", "blocks.0.fc2.weight",
            "blocks.1.fc1.weight", "blocks.1.fc1.bias", "blocks.1.fc2.weight",
            "head.0.weight", "head.0.bias", "head.1.weight", "head.1.bias",
        ])
        XCTAssertEqual(net.namedParameters().map { $0.0 }, names)
        XCTAssertEqual(net.namedModules().map { $0.0 },
                       ["", "blocks", "blocks.0", "blocks.0.fc1", "blocks.0.fc2", "blocks.1", "blocks.1.fc1",
                        "blocks.1.fc2", "head", "head.0", "head.1"])
        XCTAssertEqual(net.parameterCount, 2 + 2 * (18 + 6 + 18) + (12 + 4) + (8 + 2))
        XCTAssertTrue(net.parameters().allSatisfy { $0.requiresGrad })
    }

    func testSameSeedSameWeights() {
        var r1 = RNG(seed: 5), r2 = RNG(seed: 5), r3 = RNG(seed: 6)
        let a = TinyNet(rng: &r1), b = TinyNet(rng: &r2), c = TinyNet(rng: &r3)
        XCTAssertEqual(a.parameters().map(\.scalars), b.parameters().map(\.scalars))
        XCTAssertNotEqual(a.parameters()[1].scalars, c.parameters()[1].scalars)
    }

    func testTrainEvalAndZeroGrad() throws {
        var rng = RNG(seed: 1)
        let net = TinyNet(rng: &rng)
        net.eval()
        XCTAssertTrue(net.namedModules().allSatisfy { !$0.1.isTraining })
        net.train()
        XCTAssertTrue(net.namedModules().allSatisfy { $0.1.isTraining })
        try net(randn([5, 3])).sum().backward()
        XCTAssertTrue(net.parameters().allSatisfy { $0.grad != nil })
        net.zeroGrad()
        XCTAssertTrue(net.parameters().allSatisfy { $0.grad == nil })
    }

    /// A tensor shared by two modules is one parameter (updated once) but two state-dict names.
    func testTiedParametersAppearOnce() {
        final class Tied: Module {
            let w = Init.constant([2], 1)
            var isTraining = true
            func ownParameters() -> [(String, Tensor)] { [("a", w), ("b", w)] }
        }
        let t = Tied()
        XCTAssertEqual(t.namedParameters().map { $0.0 }, ["a"])
        XCTAssertEqual(t.stateDict().map { $0.0 }, ["a", "b"])
    }

    func testLinearMatchesDefinitionAndInit() throws {
        var rng = RNG(seed: 3)
        let lin = Linear(5, 4, rng: &rng)
        XCTAssertEqual(lin.weight.shape, [4, 5])
        XCTAssertEqual(lin.bias?.shape, [4])
        let bound = 1 / Float(5).squareRoot()
        XCTAssertTrue((lin.weight.scalars + lin.bias!.scalars).allSatisfy { abs($0) <= bound })
        // Wide layer: the init spreads over the whole interval.
        let wide = Linear(400, 300, rng: &rng).weight.scalars
        let b2 = 1 / Float(400).squareRoot()
        XCTAssertGreaterThan(wide.max()!, 0.98 * b2)
        XCTAssertLessThan(wide.min()!, -0.98 * b2)
        XCTAssertEqual(Double(wide.reduce(0, +)) / Double(wide.count), 0, accuracy: 0.01 * Double(b2))

        let x = randn([2, 3, 5])
        let y = try lin(x)
        XCTAssertEqual(y.shape, [2, 3, 4])
        let w = lin.weight.scalars, b = lin.bias!.scalars, xs = x.scalars
        var expected = [Float]()
        for r in 0..<6 {
            for o in 0..<4 {
                var s = b[o]
                for i in 0..<5 { s += xs[r * 5 + i] * w[o * 5 + i] }
                expected.append(s)
            }
        }
        assertClose(y.scalars, expected, atol: 1e-5, rtol: 1e-5, "linear")
        assertThrows(["Linear", "[2, 3]", "5 features"]) { _ = try lin(randn([2, 3])) }
    }

    func testLinearGradients() throws {
        var rng = RNG(seed: 4)
        let lin = Linear(4, 3, rng: &rng)
        let x = randn([2, 5, 4])
        try gradCheck("linear", [x] + lin.parameters(), maxProbes: 24, seed: 99) { _ in try lin(x) }
        let nb = Linear(4, 3, bias: false, rng: &rng)
        try gradCheck("linear-nobias", [x, nb.weight], maxProbes: 24, seed: 99) { _ in try nb(x) }
    }

    func testModuleGradientsThroughTree() throws {
        var rng = RNG(seed: 8)
        let net = TinyNet(rng: &rng)
        let x = randn([4, 3], seed: 11)
        try gradCheck("tinynet", net.parameters(), maxProbes: 24, seed: 99) { _ in try net(x) }
    }
}
