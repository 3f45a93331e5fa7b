import ArgumentParser
import ReflowCLI
import Autograd
import Foundation
import Reporting
import TensorCore

BLASLauncher.reexecIfNeeded()

/// Throughput of our engine against PyTorch: two small training models (Models.swift) and the
/// chain's own U-Net (ChainBench.swift: training step, one-step sampling, guided pairs), each
/// run by scripts/bench_torch.py on the same model. Measurements alternate ours / torch and
/// report medians, because the machine is small and shared: a burst of load hits both alike.
struct ReflowBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reflow-bench",
        abstract: "Speed of our engine vs PyTorch on the same models: MLP, conv net, and the chain's U-Net (train step, one-step sampling, guided pairs).",
        discussion: """
        Rows: mlp and conv train small models (zero grads, forward, MSE, backward, AdamW). unet-train is \
        one teacher step of the --config's model (default experiments/fashion.yaml: text encoder + U-Net, \
        its batch size, rectified-flow loss, gradient clipping, AdamW, EMA); unet-sample is one-step \
        sampling (x0 + v(x0, 0)) of a pairs.batch_size batch; unet-pairs is guided pair generation as \
        pairs: sets it (solver, steps, guidance; both guidance branches in one batch), timed over the \
        first --steps solver steps of a batch and scaled to the whole batch. The PyTorch side \
        (python/reflow_model.py) loads the same weights and inputs and checks its outputs against ours \
        before timing.

        Every repeat runs our side, then a fresh `python3 scripts/bench_torch.py` subprocess; the table \
        reports medians over repeats and the ratio ours/torch (> 1 means we are faster).

        Like every reflow tool, the bench keeps freed blocks in glibc's heap (mmap threshold 256 MB, \
        trim threshold 1 GB; --default-malloc restores glibc's 128 KB thresholds): with glibc's defaults, \
        large activation buffers keep going back to the kernel and their pages fault in again on every step (about 10% of the conv model's time, 5% of the MLP's).

        On a loaded machine run it niced (`nice -n -15`; with autogroup scheduling also \
        `echo -15 > /proc/self/autogroup` in the launching shell): PyTorch's OpenMP threads spin at \
        barriers and collapse (up to 10x) when another process takes a core.
        """,
        version: ReflowVersion.string)

    enum ModelChoice: String, ExpressibleByArgument, CaseIterable {
        case mlp, conv, unetTrain = "unet-train", unetSample = "unet-sample", unetPairs = "unet-pairs", unet, all
    }

    @Option(name: .long, help: "Which rows to run: mlp, conv, unet-train, unet-sample, unet-pairs, unet (its three rows) or all.")
    var model: ModelChoice = .all

    @Option(name: .long, help: "Experiment config whose model the unet rows run.")
    var config: String = "experiments/fashion.yaml"

    @Option(name: .long, help: "Run the unet rows on this checkpoint's weights (a trained teacher, 2-RF or student of --config's dataset) instead of a freshly initialised model.")
    var checkpoint: String?

    @Option(name: .customLong("chain-dir"), help: "Keep the unet rows' model and inputs for the torch side in this folder (default: a temporary folder, removed).")
    var chainDir: String?

    @Option(name: .long, help: "Timed iterations per measurement (default per row: mlp 100, conv 20, unet-train 6, unet-sample 4 batches, unet-pairs 2 solver steps).")
    var steps: Int?

    @Option(name: .long, help: "Untimed warm-up iterations before each measurement (default: mlp 10, conv 3, unet rows 1).")
    var warmup: Int?

    @Option(name: .long, help: "Measurements per side (alternating ours and torch).")
    var repeats: Int = 5

    @Option(name: .long, help: "Threads for our kernels and OpenBLAS, and torch.set_num_threads.")
    var threads: Int = 2

    @Option(name: .long, help: "Python interpreter with torch installed.")
    var python: String = "python3"

    @Flag(name: .customLong("no-torch"), help: "Measure our engine only.")
    var noTorch = false

    @Flag(name: .long, help: "Print the results as one JSON object instead of Markdown.")
    var json = false

    @Flag(name: .long, help: "Instead of training, time each op's forward and backward at the models' shapes (median of --steps calls, default 20; --repeats alternating passes), ours and torch side by side.")
    var ops = false

    @Flag(name: .customLong("default-malloc"), help: "Keep glibc's default malloc thresholds (see --help discussion).")
    var defaultMalloc = false

    @Flag(name: .customLong("profile-ops"), help: "Also print our time per op (forward and backward) over --steps teacher training steps of the unet model.")
    var profileOps = false

    @Flag(name: .long, help: "Also time each phase of our step (forward stages, loss, backward, optimizer) and print torch's profiler table.")
    var breakdown = false

    func validate() throws {
        if let steps, steps < 1 { throw ValidationError("--steps must be at least 1") }
        if let warmup, warmup < 0 { throw ValidationError("--warmup must be >= 0") }
        if repeats < 1 { throw ValidationError("--repeats must be at least 1") }
        if threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    func run() throws {
        if defaultMalloc { Facts.defaultMalloc() }
        Runtime.threads = threads
        let kinds = Workload.Kind.allCases

        var torch: TorchRunner? = nil
        var torchNote = "not run (--no-torch)"
        if !noTorch {
            do { torch = try TorchRunner.locate(python: python); torchNote = torch!.version } catch {
                torchNote = "unavailable"
                Log.warning("torch side disabled: \(error)")
            }
        }
        let facts = Facts(threads: threads, blasCore: Runtime.blasCoreName, cpu: Facts.cpuModel(),
                          cores: ProcessInfo.processInfo.activeProcessorCount, torch: torchNote,
                          loadBefore: Facts.loadAverage(),
                          malloc: defaultMalloc ? "glibc defaults" : "freed blocks kept (mmap threshold 256 MB, trim threshold 1 GB)")
        if !json { print(facts.markdownHeader); fflush(stdout) }
        if ops { try printOps(torch: torch); return }

        var results: [Result] = []
        for row in try makeRows() {
            let steps = self.steps ?? row.defaultSteps
            let warmup = self.warmup ?? row.defaultWarmup
            var ours: [Double] = [], theirs: [Double] = []
            var torchParams: Int? = nil
            var check: String? = nil
            var sysShares: [Double] = []
            for r in 0..<repeats {
                let before = CPUTimes.now()
                ours.append(try row.measure(steps: steps, warmup: warmup))
                sysShares.append(CPUTimes.now().systemShare(since: before))
                if let t = torch {
                    do {
                        let m = try t.measure(row.torchArguments, steps: steps, warmup: warmup, threads: threads)
                        theirs.append(m.rate)
                        torchParams = m.params
                        check = check ?? m.check
                    } catch {
                        Log.warning("torch run failed, ours only from here: \(error)")
                        torch = nil
                    }
                }
                if !json {
                    let t = theirs.count > r ? String(format: ", torch %.2f", theirs[r]) : ""
                    Log.write(String(format: "  %@ repeat %d/%d: ours %.2f%@ %@\n", row.name, r + 1, repeats, ours[r], t, row.unit))
                }
            }
            if let tp = torchParams, tp != row.parameterCount {
                Log.warning("\(row.name) has \(row.parameterCount) parameters here but \(tp) in torch: the models differ")
            }
            if let check, !json { Log.write("  \(row.name) outputs, ours vs torch: \(check)\n") }
            results.append(Result(model: row.name, unit: row.unit, steps: steps, warmup: warmup, params: row.parameterCount,
                                  torchParams: torchParams, ours: ours, torch: theirs, check: check,
                                  systemShare: median(sysShares)))
        }

        let loadAfter = Facts.loadAverage()
        if json {
            printJSON(facts: facts, results: results, loadAfter: loadAfter)
        } else {
            print(Result.markdownTable(results))
            print("\nLoad average (1 min) before/after: \(facts.loadBefore) / \(loadAfter)")
        }

        if profileOps { try printOpProfile(steps: steps ?? 6) }

        if breakdown {
            for kind in kinds where model == .all || model.rawValue == kind.rawValue {
                let steps = self.steps ?? (kind == .mlp ? 100 : 20)
                let warmup = self.warmup ?? (kind == .mlp ? 10 : 3)
                try printBreakdown(kind, steps: steps, warmup: warmup, torch: torch)
            }
        }
    }

    /// Our time per op name over `steps` U-Net training steps (Autograd's OpProfile).
    func printOpProfile(steps: Int) throws {
        let work = try ChainWorkload(configPath: config, folder: nil)
        try work.trainStep()
        OpProfile.reset()
        OpProfile.enabled = true
        let t0 = now()
        for _ in 0..<steps { try work.trainStep() }
        let total = (now() - t0) / Double(steps) * 1000
        OpProfile.enabled = false
        let names = Set(OpProfile.forward.keys).union(OpProfile.backward.keys)
        let rows = names.map { n -> (String, Int, Double, Double) in
            let f = OpProfile.forward[n], b = OpProfile.backward[n]
            return (n, (f?.calls ?? b?.calls ?? 0) / steps, (f?.seconds ?? 0) / Double(steps) * 1000, (b?.seconds ?? 0) / Double(steps) * 1000)
        }.sorted { $0.2 + $0.3 > $1.2 + $1.3 }
        print("\n### Ours, unet-train: ms per step by op (\(steps) steps, \(threads) threads; step \(String(format: "%.1f", total)) ms)\n")
        print("| op | calls/step | forward ms | backward ms | share |")
        print("|---|---:|---:|---:|---:|")
        for (n, c, f, b) in rows {
            print(String(format: "| %@ | %d | %.2f | %.2f | %.1f%% |", n, c, f, b, 100 * (f + b) / total))
        }
    }

    /// The rows --model selects, in table order.
    func makeRows() throws -> [BenchRow] {
        var rows: [BenchRow] = []
        for kind in Workload.Kind.allCases where model == .all || model.rawValue == kind.rawValue {
            rows.append(TrainingRow(work: Workload(kind)))
        }
        let chainKinds = ChainRow.Kind.allCases.filter { model == .all || model == .unet || model.rawValue == $0.rawValue }
        if !chainKinds.isEmpty {
            let work = try ChainWorkload(configPath: config, folder: chainDir, checkpoint: checkpoint)
            rows += chainKinds.map { ChainRow(kind: $0, work: work) }
        }
        return rows
    }

    /// Mean time per step of each phase of our step; then torch.profiler's table for the same
    /// model (self CPU time per op), so the two can be put side by side.
    func printBreakdown(_ kind: Workload.Kind, steps: Int, warmup: Int, torch: TorchRunner?) throws {
        let work = Workload(kind)
        for _ in 0..<warmup { try work.step() }
        let phases = PhaseTimer()
        let t0 = now()
        for _ in 0..<steps { try work.timedStep(phases) }
        let total = (now() - t0) / Double(steps)
        print("\n### Ours, \(kind.rawValue): time per step by phase (\(steps) steps)\n")
        print("| phase | ms/step | share |")
        print("|---|---:|---:|")
        for name in phases.order {
            let ms = phases.seconds[name]! / Double(steps) * 1000
            print(String(format: "| %@ | %.2f | %.1f%% |", name, ms, 100 * ms / (total * 1000)))
        }
        print(String(format: "| **total** | **%.2f** | |", total * 1000))
        if let torch {
            let r = try torch.measure(["--model", kind.rawValue], steps: steps, warmup: warmup, threads: threads, profile: true)
            print("\n### Torch, \(kind.rawValue): torch.profiler over \(steps) steps (\(String(format: "%.1f", r.rate)) steps/s)\n")
            print("```\n\(r.profile)\n```")
        }
    }

    /// The per-op table: ours and torch's forward / backward medians and their ratios.
    func printOps(torch: TorchRunner?) throws {
        let iters = steps ?? 20
        // Alternate whole ours / torch passes and take each op's median over the passes, so a
        // burst of load on the machine does not land on one side only.
        var oursRuns: [[(name: String, fwd: Double, bwd: Double)]] = []
        var theirRuns: [[String: (Double, Double)]] = []
        var torch = torch
        for r in 0..<repeats {
            oursRuns.append(try OpBench.run(iters: iters))
            if let t = torch {
                do { theirRuns.append(try t.measureOps(iters: iters, threads: threads)) } catch {
                    Log.warning("torch --ops failed: \(error)")
                    torch = nil
                }
            }
            if !json { Log.info("  ops pass \(r + 1)/\(repeats) done") }
        }
        let ours = oursRuns[0].indices.map { i in
            (name: oursRuns[0][i].name, fwd: median(oursRuns.map { $0[i].fwd }), bwd: median(oursRuns.map { $0[i].bwd }))
        }
        var theirs: [String: (Double, Double)] = [:]
        for name in theirRuns.first?.keys ?? [:].keys {
            let rows = theirRuns.compactMap { $0[name] }
            theirs[name] = (median(rows.map { $0.0 }), median(rows.map { $0.1 }))
        }
        if json {
            let rows: [[String: Any]] = ours.map { r in
                var m: [String: Any] = ["op": r.name, "fwd_ms": r.fwd, "bwd_ms": r.bwd]
                if let t = theirs[r.name] { m["torch_fwd_ms"] = t.0; m["torch_bwd_ms"] = t.1 }
                return m
            }
            if let data = try? JSONSerialization.data(withJSONObject: ["ops": rows, "threads": threads], options: [.sortedKeys]) {
                print(String(decoding: data, as: UTF8.self))
            }
            return
        }
        print("ms per call: median over \(repeats) alternating passes of the median of \(iters) calls (ratio = torch time / our time: > 1 means we are faster)\n")
        print("| op | ours fwd | torch fwd | fwd ratio | ours bwd | torch bwd | bwd ratio |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        func ratio(_ t: Double?, _ o: Double) -> String { t.map { o > 0 ? String(format: "%.2f", $0 / o) : "-" } ?? "-" }
        func ms(_ x: Double?) -> String { x.map { String(format: "%.3f", $0) } ?? "-" }
        for r in ours {
            let t = theirs[r.name]
            let isStep = r.name.hasPrefix("adamw")
            print("| \(r.name) | \(ms(r.fwd)) | \(ms(t?.0)) | \(ratio(t?.0, r.fwd)) | \(isStep ? "-" : ms(r.bwd)) | \(isStep ? "-" : ms(t?.1)) | \(isStep ? "-" : ratio(t?.1, r.bwd)) |")
        }
    }

    func printJSON(facts: Facts, results: [Result], loadAfter: String) {
        var obj: [String: Any] = [
            "threads": facts.threads, "blas_core": facts.blasCore, "cpu": facts.cpu, "cores": facts.cores,
            "torch": facts.torch, "load_before": facts.loadBefore, "load_after": loadAfter, "malloc": facts.malloc,
        ]
        obj["models"] = results.map { r -> [String: Any] in
            var m: [String: Any] = ["model": r.model, "unit": r.unit, "steps": r.steps, "warmup": r.warmup, "params": r.params,
                                    "ours": r.ours, "ours_median": median(r.ours)]
            if let c = r.check { m["check"] = c }
            m["ours_system_share"] = r.systemShare
            if !r.torch.isEmpty {
                m["torch"] = r.torch
                m["torch_median"] = median(r.torch)
                if let tp = r.torchParams { m["torch_params"] = tp }
                m["ratio"] = median(r.ours) / median(r.torch)
            }
            return m
        }
        if let data = try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]) {
            print(String(decoding: data, as: UTF8.self))
        }
    }
}

ReflowBench.mainWithReflowErrors()
