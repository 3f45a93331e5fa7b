import Autograd
import NN
import TensorCore

// The two benchmark networks, built to the same shapes as scripts/bench_torch.py (parameter
// names follow torch's too, so the counts can be compared line by line). Initial values come
// from our own RNG with torch's default scales; they need not equal torch's.

/// x -> 4 x Linear(512, 512), SiLU between (none after the last).
final class BenchMLP: Layer {
    let layers: [Linear]
    var isTraining = true

    init(width: Int = 512, depth: Int = 4, rng: inout RNG) {
        var ls: [Linear] = []
        for _ in 0..<depth { ls.append(Linear(width, width, rng: &rng)) }
        layers = ls
    }

    func children() -> [(String, Module)] { layers.enumerated().map { ("layers.\($0.offset)", $0.element as Module) } }

    func callAsFunction(_ x: Tensor) throws -> Tensor {
        var h = x
        for (i, l) in layers.enumerated() {
            h = try l(h)
            if i < layers.count - 1 { h = h.silu() }
        }
        return h
    }
}

/// h = conv3x3(SiLU(GN8(x))); h = conv3x3(SiLU(GN8(h))); x + h.
final class ResBlock: Layer {
    let n1: GroupNorm, c1: Conv2d, n2: GroupNorm, c2: Conv2d
    var isTraining = true

    init(_ c: Int, rng: inout RNG) {
        n1 = GroupNorm(groups: 8, channels: c)
        c1 = Conv2d(c, c, kernel: 3, padding: 1, rng: &rng)
        n2 = GroupNorm(groups: 8, channels: c)
        c2 = Conv2d(c, c, kernel: 3, padding: 1, rng: &rng)
    }

    func children() -> [(String, Module)] { [("n1", n1), ("c1", c1), ("n2", n2), ("c2", c2)] }

    func callAsFunction(_ x: Tensor) throws -> Tensor {
        let h = try c1(try n1(x).silu())
        return try x + c2(try n2(h).silu())
    }
}

/// conv3x3 1->32, ResBlock(32), conv3x3 stride 2 32->64, ResBlock(64), mean over H, W,
/// Linear 64->10.
final class BenchConvNet: Layer {
    let stem: Conv2d, b1: ResBlock, down: Conv2d, b2: ResBlock, head: Linear
    var isTraining = true

    init(rng: inout RNG) {
        stem = Conv2d(1, 32, kernel: 3, padding: 1, rng: &rng)
        b1 = ResBlock(32, rng: &rng)
        down = Conv2d(32, 64, kernel: 3, stride: 2, padding: 1, rng: &rng)
        b2 = ResBlock(64, rng: &rng)
        head = Linear(64, 10, rng: &rng)
    }

    func children() -> [(String, Module)] { [("stem", stem), ("b1", b1), ("down", down), ("b2", b2), ("head", head)] }

    func callAsFunction(_ x: Tensor) throws -> Tensor { try forward(x, timer: nil) }

    /// The forward pass; `timer`, when given, is told the end of each stage (for --breakdown).
    func forward(_ x: Tensor, timer: ((String) -> Void)?) throws -> Tensor {
        var h = try stem(x); timer?("fwd stem conv 1->32")
        h = try b1(h); timer?("fwd ResBlock(32)")
        h = try down(h); timer?("fwd down conv 32->64 s2")
        h = try b2(h); timer?("fwd ResBlock(64)")
        h = try head(try h.mean(axes: [2, 3])); timer?("fwd mean + head")
        return h
    }
}

/// One benchmark case: a model, fixed input and target, and its optimizer.
final class Workload {
    enum Kind: String, CaseIterable { case mlp, conv }

    let kind: Kind
    let model: Layer
    let x: Tensor, y: Tensor
    let opt: AdamW

    init(_ kind: Kind, seed: UInt64 = 0) {
        self.kind = kind
        var rng = RNG(seed: seed)
        switch kind {
        case .mlp:
            model = BenchMLP(rng: &rng)
            x = Tensor.randn([256, 512], rng: &rng)
            y = Tensor.randn([256, 512], rng: &rng)
        case .conv:
            model = BenchConvNet(rng: &rng)
            x = Tensor.randn([64, 1, 28, 28], rng: &rng)
            y = Tensor.randn([64, 10], rng: &rng)
        }
        // torch.optim.AdamW defaults: betas (0.9, 0.999), eps 1e-8, weight decay 0.01 on every
        // parameter (the torch script uses a single parameter group).
        opt = AdamW(model, lr: 1e-4)
    }

    /// zero grads, forward, loss, backward, optimizer step; returns the loss.
    @discardableResult
    func step() throws -> Float {
        opt.zeroGrad()
        let loss = try mseLoss(try model(x), y)
        loss.backward()
        opt.step()
        return loss.item
    }

    /// The same step with each phase's time added to `phases`.
    func timedStep(_ phases: PhaseTimer) throws {
        phases.start()
        opt.zeroGrad(); phases.mark("zero grads")
        let out: Tensor
        if let conv = model as? BenchConvNet {
            out = try conv.forward(x, timer: { phases.mark($0) })
        } else {
            out = try model(x); phases.mark("forward")
        }
        let loss = try mseLoss(out, y); phases.mark("loss")
        loss.backward(); phases.mark("backward")
        opt.step(); phases.mark("optimizer")
        _ = loss.item
    }
}

/// Accumulated seconds per named phase, in first-seen order.
final class PhaseTimer {
    private(set) var order: [String] = []
    private(set) var seconds: [String: Double] = [:]
    private var last = 0.0

    func start() { last = now() }

    func mark(_ name: String) {
        let t = now()
        if seconds[name] == nil { order.append(name) }
        seconds[name, default: 0] += t - last
        last = t
    }
}
