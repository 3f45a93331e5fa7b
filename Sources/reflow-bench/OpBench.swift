import Autograd
import NN
import TensorCore

// Per-op forward and backward times for the ops the two models are made of, at the models'
// shapes (--ops). scripts/bench_torch.py --ops times the same list in torch, so the two tables
// line up row by row and show which op loses how much.

struct OpCase {
    let name: String
    /// Builds fresh inputs and parameters; returns the forward and every leaf whose gradient
    /// must be cleared between runs (so backward times never include accumulation).
    let make: (inout RNG) -> (forward: () throws -> Tensor, leaves: [Tensor])
}

enum OpBench {
    /// The rows, in the order scripts/bench_torch.py prints them (names must match).
    static func cases() -> [OpCase] {
        func input(_ shape: [Int], _ rng: inout RNG, grad: Bool = true) -> Tensor {
            Tensor.randn(shape, rng: &rng, requiresGrad: grad)
        }
        func conv(_ name: String, n: Int, c: Int, o: Int, hw: Int, stride: Int, inputGrad: Bool) -> OpCase {
            OpCase(name: name) { rng in
                let layer = Conv2d(c, o, kernel: 3, stride: stride, padding: 1, rng: &rng)
                let x = input([n, c, hw, hw], &rng, grad: inputGrad)
                return ({ try layer(x) }, layer.parameters() + [x])
            }
        }
        func gn(_ name: String, _ shape: [Int]) -> OpCase {
            OpCase(name: name) { rng in
                let layer = GroupNorm(groups: 8, channels: shape[1])
                let x = input(shape, &rng)
                return ({ try layer(x) }, layer.parameters() + [x])
            }
        }
        func silu(_ name: String, _ shape: [Int]) -> OpCase {
            OpCase(name: name) { rng in
                let x = input(shape, &rng)
                return ({ x.silu() }, [x])
            }
        }
        func add(_ name: String, _ shape: [Int]) -> OpCase {
            OpCase(name: name) { rng in
                let a = input(shape, &rng), b = input(shape, &rng)
                return ({ try a + b }, [a, b])
            }
        }
        return [
            conv("conv 1->32 28x28 (stem)", n: 64, c: 1, o: 32, hw: 28, stride: 1, inputGrad: false),
            conv("conv 32->32 28x28", n: 64, c: 32, o: 32, hw: 28, stride: 1, inputGrad: true),
            conv("conv 32->64 s2 28x28", n: 64, c: 32, o: 64, hw: 28, stride: 2, inputGrad: true),
            conv("conv 64->64 14x14", n: 64, c: 64, o: 64, hw: 14, stride: 1, inputGrad: true),
            gn("groupnorm8 [64,32,28,28]", [64, 32, 28, 28]),
            gn("groupnorm8 [64,64,14,14]", [64, 64, 14, 14]),
            silu("silu [64,32,28,28]", [64, 32, 28, 28]),
            silu("silu [64,64,14,14]", [64, 64, 14, 14]),
            add("add [64,32,28,28]", [64, 32, 28, 28]),
            OpCase(name: "mean(2,3) [64,64,14,14]") { rng in
                let x = input([64, 64, 14, 14], &rng)
                return ({ try x.mean(axes: [2, 3]) }, [x])
            },
            OpCase(name: "linear 512->512 b256") { rng in
                let layer = Linear(512, 512, rng: &rng)
                let x = input([256, 512], &rng)
                return ({ try layer(x) }, layer.parameters() + [x])
            },
            silu("silu [256,512]", [256, 512]),
        ]
    }

    /// Median forward and backward milliseconds of each case over `iters` runs (after a
    /// few untimed ones), plus the AdamW step over each model's parameters.
    static func run(iters: Int) throws -> [(name: String, fwd: Double, bwd: Double)] {
        var out: [(String, Double, Double)] = []
        var rng = RNG(seed: 1)
        for c in cases() {
            let (forward, leaves) = c.make(&rng)
            var f: [Double] = [], b: [Double] = []
            for i in 0..<(iters + 3) {
                for p in leaves { p.grad = nil }
                let t0 = now()
                let y = try forward()
                let t1 = now()
                let seed = Tensor.ones(y.shape)
                let t2 = now()
                y.backward(seed)
                let t3 = now()
                if i >= 3 { f.append(t1 - t0); b.append(t3 - t2) }
            }
            out.append((c.name, median(f) * 1000, median(b) * 1000))
        }
        for kind in Workload.Kind.allCases {
            let work = Workload(kind)
            try work.step()  // creates the gradients and the optimizer state
            var s: [Double] = []
            for _ in 0..<(iters + 3) {
                let t0 = now()
                work.opt.step()
                s.append(now() - t0)
            }
            out.append(("adamw step (\(kind.rawValue) params)", median(Array(s.dropFirst(3))) * 1000, 0))
        }
        return out
    }
}
