import ArgumentParser
import Foundation
import Reporting
import TensorCore

BLASLauncher.reexecIfNeeded()

/// Training throughput of our engine against PyTorch on two small models (see Models.swift and
/// scripts/bench_torch.py). Measurements alternate ours / torch and report medians, because
/// the machine is small and shared: a burst of load hits both sides alike.
struct ReflowBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reflow-bench",
        abstract: "Training steps per second of our engine vs PyTorch (MLP and conv net, AdamW, MSE).",
        discussion: """
        Each timed step is: zero grads, forward, loss, backward, optimizer step (same on both sides). \
        Every repeat runs our model, then a fresh `python3 scripts/bench_torch.py` subprocess; the table \
        reports medians over repeats and the ratio ours/torch (> 1 means we are faster).

        Like every reflow tool, the bench keeps freed blocks in glibc's heap (mmap threshold 256 MB, \
        trim threshold 1 GB; --default-malloc restores glibc's 128 KB thresholds): with glibc's defaults, large activation buffers keep going back to the kernel \
        and their pages fault in again on every step (about 10% of the conv model's time, 5% of the MLP's).

        On a loaded machine run it niced (`nice -n -15`; with autogroup scheduling also \
        `echo -15 > /proc/self/autogroup` in the launching shell): PyTorch's OpenMP threads spin at \
        barriers and collapse (up to 10x) when another process takes a core.
        """)

    enum ModelChoice: String, ExpressibleByArgument, CaseIterable { case mlp, conv, all }

    @Option(name: .long, help: "Which model to benchmark: mlp, conv or all.")
    var model: ModelChoice = .all

    @Option(name: .long, help: "Timed steps per measurement (default: 100 for mlp, 20 for conv).")
    var steps: Int?

    @Option(name: .long, help: "Untimed warm-up steps before each measurement (default: 10 for mlp, 3 for conv).")
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
        let kinds: [Workload.Kind] = model == .all ? Workload.Kind.allCases : [Workload.Kind(rawValue: model.rawValue)!]

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
        for kind in kinds {
            let steps = self.steps ?? (kind == .mlp ? 100 : 20)
            let warmup = self.warmup ?? (kind == .mlp ? 10 : 3)
            let work = Workload(kind)
            var ours: [Double] = [], theirs: [Double] = []
            var torchParams: Int? = nil
            var lastLoss: Float = .nan
            for r in 0..<repeats {
                for _ in 0..<warmup { try work.step() }
                let t0 = now()
                for _ in 0..<steps { lastLoss = try work.step() }
                ours.append(Double(steps) / (now() - t0))
                if let t = torch {
                    do {
                        let m = try t.measure(model: kind.rawValue, steps: steps, warmup: warmup, threads: threads)
                        theirs.append(m.stepsPerSecond)
                        torchParams = m.params
                    } catch {
                        Log.warning("torch run failed, ours only from here: \(error)")
                        torch = nil
                    }
                }
                if !json {
                    let t = theirs.count > r ? String(format: ", torch %.1f", theirs[r]) : ""
                    Log.write(String(format: "  %@ repeat %d/%d: ours %.1f%@ steps/s\n", kind.rawValue, r + 1, repeats, ours[r], t))
                }
            }
            let params = work.model.parameterCount
            if let tp = torchParams, tp != params {
                Log.warning("\(kind.rawValue) has \(params) parameters here but \(tp) in torch: the models differ")
            }
            results.append(Result(model: kind.rawValue, steps: steps, warmup: warmup, params: params, torchParams: torchParams,
                                  ours: ours, torch: theirs, loss: lastLoss))
        }

        let loadAfter = Facts.loadAverage()
        if json {
            printJSON(facts: facts, results: results, loadAfter: loadAfter)
        } else {
            print(Result.markdownTable(results))
            print("\nLoad average (1 min) before/after: \(facts.loadBefore) / \(loadAfter)")
        }

        if breakdown {
            for kind in kinds {
                let steps = self.steps ?? (kind == .mlp ? 100 : 20)
                let warmup = self.warmup ?? (kind == .mlp ? 10 : 3)
                try printBreakdown(kind, steps: steps, warmup: warmup, torch: torch)
            }
        }
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
            let r = try torch.measure(model: kind.rawValue, steps: steps, warmup: warmup, threads: threads, profile: true)
            print("\n### Torch, \(kind.rawValue): torch.profiler over \(steps) steps (\(String(format: "%.1f", r.stepsPerSecond)) steps/s)\n")
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
            var m: [String: Any] = ["model": r.model, "steps": r.steps, "warmup": r.warmup, "params": r.params,
                                    "ours_steps_per_s": r.ours, "ours_median": median(r.ours), "loss": Double(r.loss)]
            if !r.torch.isEmpty {
                m["torch_steps_per_s"] = r.torch
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

struct Result {
    let model: String, steps: Int, warmup: Int
    let params: Int, torchParams: Int?
    let ours: [Double], torch: [Double]
    let loss: Float

    static func markdownTable(_ rs: [Result]) -> String {
        var s = "| model | params (ours / torch) | steps x repeats | ours steps/s (median) | ours min-max | torch steps/s (median) | torch min-max | ours/torch |\n"
        s += "|---|---:|---:|---:|---:|---:|---:|---:|\n"
        for r in rs {
            let om = median(r.ours)
            let range = { (xs: [Double]) in String(format: "%.1f-%.1f", xs.min()!, xs.max()!) }
            s += "| \(r.model) | \(r.params) / \(r.torchParams.map(String.init) ?? "-") "
            if r.torch.isEmpty {
                s += String(format: "| %d x %d | %.1f | %@ | - | - | - |\n", r.steps, r.ours.count, om, range(r.ours))
            } else {
                let tm = median(r.torch)
                s += String(format: "| %d x %d | %.1f | %@ | %.1f | %@ | **%.2f** |\n",
                            r.steps, r.ours.count, om, range(r.ours), tm, range(r.torch), om / tm)
            }
        }
        return s
    }
}

struct Facts {
    let threads: Int, blasCore: String, cpu: String, cores: Int, torch: String, loadBefore: String
    let malloc: String

    var markdownHeader: String {
        """
        ## reflow-bench

        - threads: \(threads) (ours and OpenBLAS; torch.set_num_threads(\(threads)))
        - OpenBLAS core: \(blasCore) (OPENBLAS_CORETYPE=\(ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] ?? "unset"))
        - CPU: \(cpu), \(cores) online cores
        - torch: \(torch)
        - malloc (ours): \(malloc)

        """
    }

    /// Back to glibc's initial thresholds (BLASLauncher keeps large blocks by default).
    static func defaultMalloc() {
        // <malloc.h> is not in Swift's Glibc module: M_MMAP_THRESHOLD = -3, M_TRIM_THRESHOLD = -1.
        _ = glibcMallopt(-3, 128 << 10)
        _ = glibcMallopt(-1, 128 << 10)
    }

    /// "model name" from /proc/cpuinfo, with family/model (VMs often report only "AMD EPYC")
    /// and whether AVX-512 is there.
    static func cpuModel() -> String {
        guard let text = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8) else { return "unknown" }
        var fields: [String: String] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let key = line[..<colon].trimmingCharacters(in: .whitespaces)
            if fields[key] == nil { fields[key] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces) }
        }
        let name = fields["model name"] ?? "unknown"
        let avx512 = (fields["flags"] ?? "").split(separator: " ").contains("avx512f")
        return "\(name) (family \(fields["cpu family"] ?? "?"), model \(fields["model"] ?? "?")\(avx512 ? ", AVX-512" : ""))"
    }

    static func loadAverage() -> String {
        guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return "?" }
        return text.split(separator: " ").first.map(String.init) ?? "?"
    }
}

@_silgen_name("mallopt")
func glibcMallopt(_ param: Int32, _ value: Int32) -> Int32

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    if s.isEmpty { return .nan }
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

/// Monotonic time in seconds.
func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

ReflowBench.main()
