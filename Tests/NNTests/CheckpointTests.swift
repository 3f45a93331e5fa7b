import Foundation
import XCTest
import Autograd
import NN
import TensorCore
import TestSupport
import Formats

/// A module holding named parameters of given shapes under "blocks.0.conv".
final class ShapeHolder: Module {
    final class Leaf: Module {
        var params: [(String, Tensor)]
        var isTraining = true
        init(_ p: [(String, Tensor)]) { params = p }
        func ownParameters() -> [(String, Tensor)] { params }
    }
    final class Block: Module {
        let conv: Leaf
        var isTraining = true
        init(_ c: Leaf) { conv = c }
        func children() -> [(String, Module)] { [("conv", conv)] }
    }
    let conv: Leaf
    var isTraining = true
    init(weight: [Int], bias: Int) {
        conv = Leaf([("weight", Init.constant(weight, 0.5)), ("bias", Init.constant([bias], 0.25))])
    }
    func children() -> [(String, Module)] { [("blocks", ModuleList([Block(conv)]))] }
}

final class CheckpointTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try makeTempDir("ckpt") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func testSaveLoadRoundTrip() throws {
        var r1 = RNG(seed: 1), r2 = RNG(seed: 2)
        let a = TinyNet(rng: &r1), b = TinyNet(rng: &r2)
        let url = dir.appendingPathComponent("model.safetensors")
        try saveCheckpoint(a, metadata: ["stage": "teacher", "config": "{\"dim\":3}"], to: url)
        XCTAssertNotEqual(a.parameters().map(\.scalars), b.parameters().map(\.scalars))
        let meta = try loadCheckpoint(into: b, from: url)
        XCTAssertEqual(a.parameters().map(\.scalars), b.parameters().map(\.scalars))
        XCTAssertEqual(meta, ["stage": "teacher", "config": "{\"dim\":3}", "format": "pt"])
        // Loading writes into the existing tensors: references held by layers stay valid.
        XCTAssertTrue(b.head.layers[0] is Linear)
        XCTAssertEqual((b.head.layers[0] as! Linear).weight.scalars, a.namedParameters().first { $0.0 == "head.0.weight" }!.1.scalars)
    }

    func testWrongShapeMissingAndExtraTensors() throws {
        let url = dir.appendingPathComponent("x.safetensors")
        let p = url.path
        try saveCheckpoint(ShapeHolder(weight: [8, 4, 3, 3], bias: 8), to: url)
        let model = ShapeHolder(weight: [16, 4, 3, 3], bias: 8)
        assertThrows(["checkpoint \(p): tensor 'blocks.0.conv.weight' has shape [8, 4, 3, 3], model expects [16, 4, 3, 3]"]) {
            try loadCheckpoint(into: model, from: url)
        }
        XCTAssertTrue(model.conv.params[1].1.scalars.allSatisfy { $0 == 0.25 }, "a failed load changes nothing")

        // Missing: the file lacks the bias. Extra: the file has a tensor the model lacks.
        let w = Tensor.zeros([16, 4, 3, 3])
        try Safetensors.write([("blocks.0.conv.weight", w), ("blocks.0.conv.gamma", Tensor.zeros([16]))], to: url)
        assertThrows(["checkpoint \(p): missing tensor 'blocks.0.conv.bias' (model expects shape [8])",
                      "checkpoint \(p): unexpected tensor 'blocks.0.conv.gamma' (shape [16]) that the model does not have"]) {
            try loadCheckpoint(into: model, from: url)
        }
        do {
            try loadCheckpoint(into: model, from: url)
        } catch let e as CheckpointError {
            XCTAssertEqual(e.problems.count, 2)
        }
        // Non-strict: matching tensors load, missing/extra are ignored.
        try loadCheckpoint(into: model, from: url, strict: false)
        XCTAssertTrue(model.conv.params[0].1.scalars.allSatisfy { $0 == 0 })
        XCTAssertTrue(model.conv.params[1].1.scalars.allSatisfy { $0 == 0.25 })
    }

    func testTrainingStateRoundTrip() throws {
        let p = randn([2, 3]); p.requiresGrad = true
        let q = randn([4], seed: 3); q.requiresGrad = true
        let opt = AdamW([("a.weight", p), ("a.bias", q)], lr: 0.01)
        p.grad = randn([2, 3], seed: 9)
        opt.step()
        let ema = EMA([("a.weight", p), ("a.bias", q)], decay: 0.99)
        ema.update()
        let rngs = ["data": RNG(seed: .max, counter: .max - 1), "noise": RNG(seed: 42, counter: 17)]
        let state = TrainingState(step: 1234, rngs: rngs, optimizer: opt.exportState(), ema: ema.exportState(),
                                  extra: ["epoch": "3"])
        let url = TrainingState.url(besideCheckpoint: dir.appendingPathComponent("run.safetensors"))
        XCTAssertEqual(url.lastPathComponent, "run.state.safetensors")
        try state.save(to: url)
        let back = try TrainingState.load(from: url)
        XCTAssertEqual(back.step, 1234)
        XCTAssertEqual(back.rngs, rngs)
        XCTAssertEqual(back.extra, ["epoch": "3"])
        XCTAssertEqual(back.optimizer?.entries.keys.sorted(), ["a.weight"], "a.bias had no gradient yet")
        XCTAssertEqual(back.optimizer?.entries["a.weight"]?.step, 1)
        XCTAssertEqual(back.optimizer?.entries["a.weight"]?.expAvgSq.scalars, opt.exportState().entries["a.weight"]?.expAvgSq.scalars)
        XCTAssertEqual(back.ema?.decay, 0.99)
        XCTAssertEqual(back.ema?.updates, 1)
        XCTAssertEqual(back.ema?.shadow["a.bias"]?.scalars, q.scalars)

        let meta = try Safetensors.readMetadata(url)
        XCTAssertEqual(meta["format"], "reflow-training-state")
        XCTAssertEqual(meta["step"], "1234")

        let weights = dir.appendingPathComponent("w.safetensors")
        try Safetensors.write([("x", Tensor.zeros([1]))], to: weights)
        assertThrows(["training state \(weights.path): not a training-state file"]) { _ = try TrainingState.load(from: weights) }
    }

    /// Train, save at step 3, train on: the same as loading the checkpoint into fresh objects
    /// and training on from there, bit for bit (weights, moments, EMA, RNG).
    func testExactResume() throws {
        func batch(_ rng: inout RNG) -> Tensor { Tensor.randn([4, 3], rng: &rng) }
        func trainStep(_ net: TinyNet, _ opt: AdamW, _ ema: EMA, _ rng: inout RNG) throws {
            let x = batch(&rng)
            opt.zeroGrad()
            let loss = try (net(x) * net(x)).mean()
            loss.backward()
            clipGradNorm(net.parameters(), maxNorm: 0.5)
            opt.step()
            ema.update()
        }
        var initRNG = RNG(seed: 10)
        let net = TinyNet(rng: &initRNG)
        let opt = AdamW(net, lr: 0.01)
        let ema = EMA(net, decay: 0.9)
        var dataRNG = RNG(seed: 77)
        for _ in 0..<3 { try trainStep(net, opt, ema, &dataRNG) }
        let url = dir.appendingPathComponent("ckpt.safetensors")
        try saveTrainingCheckpoint(net, state: TrainingState(step: 3, rngs: ["data": dataRNG],
                                                            optimizer: opt.exportState(), ema: ema.exportState()),
                                   metadata: ["stage": "reflow"], to: url)
        for _ in 0..<2 { try trainStep(net, opt, ema, &dataRNG) }

        var otherRNG = RNG(seed: 999)
        let net2 = TinyNet(rng: &otherRNG)
        let opt2 = AdamW(net2, lr: 0.01)
        let ema2 = EMA(net2, decay: 0.5)
        let (meta, state) = try loadTrainingCheckpoint(into: net2, from: url)
        XCTAssertEqual(meta["stage"], "reflow")
        XCTAssertEqual(meta["step"], "3")
        try opt2.importState(state.optimizer!)
        try ema2.importState(state.ema!)
        var rng2 = state.rngs["data"]!
        for _ in 0..<2 { try trainStep(net2, opt2, ema2, &rng2) }
        XCTAssertEqual(net2.parameters().map(\.scalars), net.parameters().map(\.scalars))
        XCTAssertEqual(ema2.shadow.map(\.scalars), ema.shadow.map(\.scalars))
        XCTAssertEqual(rng2, dataRNG)

        // The state file is the commit point: an export from another save (a kill between the
        // two writes) is ignored and rewritten from the state, which resumes at step 3.
        try saveCheckpoint(net, metadata: ["step": "5"], to: url)
        let net3 = TinyNet(rng: &otherRNG)
        let (meta3, state3) = try loadTrainingCheckpoint(into: net3, from: url)
        XCTAssertEqual(state3.step, 3)
        XCTAssertEqual(meta3["step"], "3")
        XCTAssertEqual(try Safetensors.readMetadata(url)["step"], "3")
        XCTAssertEqual(try weightsOf(url), try weightsOf(TrainingState.url(besideCheckpoint: url), prefix: "model."))
        XCTAssertEqual(net3.parameters().map(\.scalars), try TrainingState.load(from: TrainingState.url(besideCheckpoint: url))
            .weights!.map(\.1.scalars))
    }
}
