import Foundation

/// The PyTorch side: scripts/bench_torch.py run as a subprocess, one per measurement.
struct TorchRunner {
    let python: String
    let script: URL
    let version: String

    struct Failure: Error, CustomStringConvertible { let description: String }

    /// Finds the script and checks that `python` can import torch. Throws a message saying
    /// what is missing (the caller then reports our numbers only).
    static func locate(python: String) throws -> TorchRunner {
        guard let script = findScript() else {
            throw Failure(description: "scripts/bench_torch.py not found (looked in the current directory and above the executable)")
        }
        let (rc, out, err) = try run(python, ["-c", "import torch; print(torch.__version__)"])
        guard rc == 0, let v = out.split(separator: "\n").last.map(String.init), !v.isEmpty else {
            let why = err.split(separator: "\n").last.map(String.init) ?? "exit status \(rc)"
            throw Failure(description: "\(python) cannot import torch (\(why)); install it with pip install \"torch==2.13.0+cpu\"")
        }
        return TorchRunner(python: python, script: script, version: v)
    }

    /// Runs one row in a fresh process; returns torch's rate (the row's unit), its parameter
    /// count, its output check against ours (chain rows) and the profiler table (--profile).
    func measure(_ rowArguments: [String], steps: Int, warmup: Int, threads: Int,
                 profile: Bool = false) throws -> (rate: Double, params: Int?, check: String?, profile: String) {
        var args = [script.path] + rowArguments + ["--steps", "\(steps)", "--warmup", "\(warmup)", "--threads", "\(threads)"]
        if profile { args.append("--profile") }
        let (rc, out, err) = try TorchRunner.run(python, args)
        guard rc == 0 else {
            throw Failure(description: "bench_torch.py exited with status \(rc): \(err.split(separator: "\n").suffix(3).joined(separator: " | "))")
        }
        // The JSON result is the last line starting with "{"; anything before it is the profile.
        let lines = out.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard let idx = lines.lastIndex(where: { $0.hasPrefix("{") }),
              let obj = try JSONSerialization.jsonObject(with: Data(lines[idx].utf8)) as? [String: Any],
              let rate = (obj["rate"] as? NSNumber)?.doubleValue else {
            throw Failure(description: "bench_torch.py printed no JSON result line: \(out.suffix(300))")
        }
        return (rate, (obj["params"] as? NSNumber)?.intValue, obj["check"] as? String, lines[..<idx].joined(separator: "\n"))
    }

    /// torch's per-op forward / backward medians (ms) by op name (bench_torch.py --ops).
    func measureOps(iters: Int, threads: Int) throws -> [String: (Double, Double)] {
        let (rc, out, err) = try TorchRunner.run(python, [script.path, "--ops", "\(iters)", "--threads", "\(threads)"])
        guard rc == 0 else {
            throw Failure(description: "bench_torch.py --ops exited with status \(rc): \(err.split(separator: "\n").suffix(3).joined(separator: " | "))")
        }
        guard let line = out.split(separator: "\n").last(where: { $0.hasPrefix("{") }),
              let obj = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
              let rows = obj["ops"] as? [[String: Any]] else {
            throw Failure(description: "bench_torch.py --ops printed no JSON line")
        }
        var table: [String: (Double, Double)] = [:]
        for r in rows {
            guard let name = r["op"] as? String, let f = (r["fwd_ms"] as? NSNumber)?.doubleValue,
                  let b = (r["bwd_ms"] as? NSNumber)?.doubleValue else { continue }
            table[name] = (f, b)
        }
        return table
    }

    /// Runs `exe` (a path, or a name looked up in PATH) and returns (status, stdout, stderr).
    static func run(_ exe: String, _ args: [String]) throws -> (Int32, String, String) {
        let p = Process()
        if exe.contains("/") {
            p.executableURL = URL(fileURLWithPath: exe)
            p.arguments = args
        } else {
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = [exe] + args
        }
        // Our re-exec marker means nothing to the child (torch brings its own BLAS).
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "REFLOW_NO_REEXEC")
        p.environment = env
        let outPipe = Pipe(), errPipe = Pipe()
        p.standardOutput = outPipe
        p.standardError = errPipe
        do { try p.run() } catch {
            throw Failure(description: "cannot start \(exe): \(error.localizedDescription)")
        }
        // Read both pipes to the end before waiting, so a chatty child never blocks on a full pipe.
        final class Box: @unchecked Sendable { var data = Data() }
        let errBox = Box(), done = DispatchSemaphore(value: 0)
        let errHandle = errPipe.fileHandleForReading
        Thread { errBox.data = errHandle.readDataToEndOfFile(); done.signal() }.start()
        let outData = outPipe.fileHandleForReading.readDataToEndOfFile()
        done.wait()
        p.waitUntilExit()
        let errData = errBox.data
        return (p.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData, as: UTF8.self))
    }

    /// scripts/bench_torch.py in the current directory or in a parent of the executable's
    /// directory (.build*/release/reflow-bench lives two levels below the package root).
    static func findScript() -> URL? {
        let fm = FileManager.default
        var candidates = [URL(fileURLWithPath: fm.currentDirectoryPath)]
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        if let exe = try? fm.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            dir = URL(fileURLWithPath: exe).deletingLastPathComponent()
        }
        for _ in 0..<5 { candidates.append(dir); dir = dir.deletingLastPathComponent() }
        for c in candidates {
            let u = c.appendingPathComponent("scripts/bench_torch.py")
            if fm.fileExists(atPath: u.path) { return u }
        }
        return nil
    }
}
