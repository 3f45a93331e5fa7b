import ArgumentParser
import ConfigKit
import Experiments
import Foundation
import ReflowCLI
import Reporting
import Serving
import TensorCore

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve a local web page and JSON API that draw images from checkpoints.",
        discussion: """
        Examples:
          reflow serve runs/quickstart
          reflow serve --port 0 teacher.safetensors distill.safetensors

        A run folder gives its student, 2-RF, teacher and direct student (distill, reflow, teacher and \
        direct-distill .safetensors, those that exist); a file is named by its checkpoint's stage. Open the printed URL.

        API: GET /api/models; POST /api/generate with a JSON object such as {"prompt": "the number 7", \
        "model": "student", "steps": 1, "guidance": 1, "seed": 0, "count": 4} (all but prompt optional; "solver" too) \
        answers {"image": "data:image/png;base64,...", "width", "height", "ms", "total_ms", "nfe", "checkpoint", \
        "settings"}. The image is the grid reflow-sample writes for the same checkpoint, prompt, --per-prompt count, \
        steps, solver, guidance and seed. Errors are JSON {"error", "field"}: 400 for a bad field, 413 for a body over \
        --max-body-bytes, 503 when --max-pending requests are in, 504 past --time-limit.

        Defaults: a teacher samples as the config's sample section says; a 2-RF or student takes one eval.solver \
        step (a student: its student_steps) without guidance. The config is --config, else the run folder's \
        config.yaml, else the built-in defaults.
        """)

    @Argument(help: "Checkpoints (.safetensors) or run folders.") var checkpoints: [String]
    @Option(name: .long, help: "Address to listen on (127.0.0.1: this machine only; 0.0.0.0: every interface).")
    var host = "127.0.0.1"
    @Option(name: .long, help: "Port (0: any free port; the URL is printed).") var port = 8080
    @Option(name: .long, help: "Experiment config giving the sample/eval defaults (default: the run folder's config.yaml).")
    var config: String?
    @Option(name: .customLong("set"), help: ArgumentHelp("Override a config key (repeatable).", valueName: "key.path=value"))
    var overrides: [String] = []
    @Option(name: .long, help: "Requests waiting or running at once; more get 503.") var maxPending = 4
    @Option(name: .long, help: "Largest request body in bytes; larger get 413.") var maxBodyBytes = 16_384
    @Option(name: .long, help: "Seconds a request may take, queue wait included; then 504.") var timeLimit: Double = 30
    @Option(name: .long, help: "Most images per request.") var maxCount = 16
    @Option(name: .long, help: "Most solver steps per request.") var maxSteps = 200
    @Option(name: .long, help: "Threads for our kernels.") var threads = 2
    @Flag(name: .long, help: "Print only warnings and errors on stderr (no line per request).") var quiet = false
    @Option(name: .long, help: "Instead of serving: time N one-image requests over HTTP, print p50/p95, exit.")
    var bench: Int?
    @Option(name: .long, help: "Model the bench asks for (default: the first listed).") var benchModel: String?
    @Option(name: .long, help: "Prompt the bench sends.") var benchPrompt = ""

    func validate() throws {
        if checkpoints.isEmpty { throw ValidationError("give at least one checkpoint or run folder") }
        if !(0...65535).contains(port) { throw ValidationError("--port must be from 0 to 65535, got \(port)") }
        if maxPending < 1 { throw ValidationError("--max-pending must be at least 1") }
        if maxBodyBytes < 64 { throw ValidationError("--max-body-bytes must be at least 64") }
        if !(timeLimit > 0) { throw ValidationError("--time-limit must be positive (seconds)") }
        if maxCount < 1 { throw ValidationError("--max-count must be at least 1") }
        if maxSteps < 1 { throw ValidationError("--max-steps must be at least 1") }
        if threads < 1 { throw ValidationError("--threads must be at least 1") }
        if let bench, bench < 1 { throw ValidationError("--bench must be at least 1 request") }
    }

    func run() throws {
        Runtime.threads = threads
        if quiet { Log.level = .warning }
        let server: DemoServer
        do {
            let configPath = config ?? runFolderConfig(checkpoints)
            let cfg = try configPath.map { try loadExperiment(configPath: $0, overrides: overrides, threads: nil) }
                ?? loadConfig(ExperimentConfig.self, yaml: "", source: "defaults", overrides: overrides)
            let models = try loadServedModels(try servedCheckpointPaths(checkpoints), config: cfg)
            let limits = ServeLimits(maxPending: maxPending, maxBodyBytes: maxBodyBytes, timeLimit: timeLimit,
                                     maxCount: maxCount, maxSteps: maxSteps)
            server = DemoServer(models: models, limits: limits, pairs: cfg.pairs)
            try server.warmUp()
            if let m = benchModel, !models.contains(where: { $0.id == m }) {
                throw ValidationError("--bench-model \(m): not served; the models are \(models.map(\.id).joined(separator: ", "))")
            }
        } catch { exitWithError(error) }
        let (host, port, bench, model, prompt) = (host, UInt16(port), bench, benchModel ?? server.models[0].id, benchPrompt)
        Task {
            do {
                let url = try await server.start(host: host, port: port)
                if let bench {
                    guard let client = DemoClient(url: url) else { throw ValidationError("cannot read the port of \(url)") }
                    Log.info("bench: \(bench) requests for one image of \(model), \"\(prompt)\", at \(url)")
                    let r = try await benchLatency(client, model: model, prompt: prompt, requests: bench)
                    print(r.summary)
                    Foundation.exit(0)
                }
                for m in server.models { Log.info("serving \(m.label): \(m.defaults.solver.rawValue), \(m.defaults.steps) step(s), guidance \(m.defaults.guidance)") }
                print("reflow serve: open \(url)  (Ctrl-C stops)")
                fflush(stdout)
                try await server.wait()
            } catch { exitWithError(error) }
        }
        dispatchMain()
    }
}
