import Foundation
import FlyingFox
import FlyingSocks
import Experiments
import Generation
import Sampling
import Flow
import Reporting

/// The web demo: GET / (the page), GET /api/models, POST /api/generate. FlyingFox parses HTTP;
/// this type routes, checks limits and runs generations through one bounded queue.
public final class DemoServer: @unchecked Sendable {
    public let models: [ServedModel]
    public let limits: ServeLimits
    let pairs: PairsSection
    let queue: GenerationQueue
    private var server: HTTPServer?
    private var task: Task<Void, Error>?

    /// `pairs` gives dopri5's tolerances (as for reflow-sample).
    public init(models: [ServedModel], limits: ServeLimits, pairs: PairsSection) {
        self.models = models; self.limits = limits; self.pairs = pairs
        self.queue = GenerationQueue(maxPending: limits.maxPending)
    }

    /// Starts listening (port 0: any free port) and returns the page's URL.
    public func start(host requested: String, port: UInt16) async throws -> String {
        let host = requested == "localhost" ? "127.0.0.1" : requested
        let address: any SocketAddress
        do {
            address = host.contains(":") ? try sockaddr_in6.inet6(ip6: host, port: port) : try sockaddr_in.inet(ip4: host, port: port)
        } catch { throw ServeError(.badRequest, field: "--host", "'\(host)' is not an IPv4 or IPv6 address (e.g. 127.0.0.1)") }
        // FlyingFox's own handler timeout stays above ours, so that ours answers (504, JSON).
        let config = HTTPServer.Configuration(address: address, timeout: limits.timeLimit + 30, logger: .disabled)
        let server = HTTPServer(config: config, handler: ClosureHTTPHandler { [self] in await self.respond($0) })
        self.server = server
        let failure = FailureBox()
        task = Task {
            do { try await server.run() } catch { failure.set(error); throw error }
        }
        for _ in 0..<1000 {
            if await server.isListening, let a = await server.listeningAddress {
                switch a {
                case .ip4(let ip, let p): return "http://\(ip):\(p)/"
                case .ip6(let ip, let p): return "http://[\(ip)]:\(p)/"
                case .unix(let path): return "unix:\(path)"
                }
            }
            if let e = failure.error { throw ServeError(.internalServerError, field: "--port", "cannot listen on \(host):\(port): \(e)") }
            try await Task.sleep(nanoseconds: 10_000_000)
        }
        throw ServeError(.internalServerError, "the server did not start listening on \(host):\(port) within 10 s")
    }

    /// One 1-step image per model before serving: a model's first solve is several times slower
    /// (buffers, the thread pool starting), and a person's first request should not pay for it.
    public func warmUp() throws {
        for m in models {
            _ = try sampleGrid(m.model, prompts: [""], perPrompt: 1, seed: 0,
                               solver: SolverSettings(kind: .euler, steps: 1, rtol: pairs.rtol, atol: pairs.atol),
                               guidance: m.defaults.guidance, columns: nil)
        }
    }

    /// Serves until the process ends.
    public func wait() async throws { try await task?.value }

    public func stop() async { await server?.stop(timeout: 0) }

    /// Routes one request; every error is a JSON body {"error": ..., "field": ...}.
    func respond(_ request: HTTPRequest) async -> HTTPResponse {
        let arrival = Date()
        let route = "\(request.method.rawValue) \(request.path)"
        let response: HTTPResponse
        do {
            switch (request.method, request.path) {
            case (.GET, "/"): response = HTTPResponse(statusCode: .ok, headers: [.contentType: "text/html; charset=utf-8"], body: Data(demoPage.utf8))
            case (.GET, "/api/models"): response = try jsonResponse(.ok, modelsJSON)
            case (.POST, "/api/generate"): response = try await generate(request, arrival: arrival)
            case (_, "/"), (_, "/api/models"), (_, "/api/generate"):
                throw ServeError(.methodNotAllowed, "\(request.method.rawValue) is not allowed on \(request.path) (GET / and /api/models, POST /api/generate)")
            default: throw ServeError(.notFound, "no page \(request.path) (GET / and /api/models, POST /api/generate)")
            }
        } catch let e as ServeError {
            Log.info("serve: \(route) \(e.status.code): \(e)")
            var body: [String: JSONValue] = ["error": .string(e.description)]
            if let f = e.field { body["field"] = .string(f) }
            var r = (try? jsonResponse(e.status, .object(body))) ?? HTTPResponse(statusCode: e.status)
            // The unread rest of a too-large body would be taken for the next request.
            if e.status == .payloadTooLarge { r.headers[.connection] = "close" }
            return r
        } catch {
            Log.warning("serve: \(route) failed: \(error)")
            return (try? jsonResponse(.internalServerError, .object(["error": .string("\(error)")]))) ?? HTTPResponse(statusCode: .internalServerError)
        }
        return response
    }

    /// The body, refused (413) past `maxBodyBytes` without reading the rest.
    func readBody(_ request: HTTPRequest) async throws -> Data {
        let tooLarge = ServeError(.payloadTooLarge, "request body over \(limits.maxBodyBytes) bytes (reflow serve --max-body-bytes)")
        if let n = request.bodySequence.count, n > limits.maxBodyBytes { throw tooLarge }
        var data = Data()
        for try await chunk in request.bodySequence {
            data.append(chunk)
            if data.count > limits.maxBodyBytes { throw tooLarge }
        }
        return data
    }

    func generate(_ request: HTTPRequest, arrival: Date) async throws -> HTTPResponse {
        let deadline = arrival.addingTimeInterval(limits.timeLimit)
        let r = try GenerateRequest.parse(try await readBody(request), models: models, limits: limits)
        guard let served = models.first(where: { $0.id == r.model }) else { throw ServeError(.badRequest, field: "model", "unknown") }
        let settings = SolverSettings(kind: r.solver, steps: r.steps, rtol: pairs.rtol, atol: pairs.atol)
        let limit = limits.timeLimit
        let g = try await queue.run(deadline: deadline, limit: limit) {
            try sampleGrid(served.model, prompts: [r.prompt], perPrompt: r.count, seed: r.seed, solver: settings,
                           guidance: r.guidance, columns: nil, interrupt: { try checkDeadline(deadline, limit: limit) })
        }
        let png = try g.image.encoded()
        let ms = g.seconds * 1000, total = Date().timeIntervalSince(arrival) * 1000
        Log.info("serve: POST /api/generate 200 \(r.model) \(r.solver.rawValue) \(r.steps) step(s) x\(r.count): \(String(format: "%.1f", ms)) ms solve, \(String(format: "%.1f", total)) ms in all")
        return try jsonResponse(.ok, .object([
            "image": .string("data:image/png;base64," + png.base64EncodedString()),
            "width": .number(Double(g.image.width)), "height": .number(Double(g.image.height)),
            "ms": .number((ms * 100).rounded() / 100), "total_ms": .number((total * 100).rounded() / 100),
            "nfe": .number(Double(g.nfe)), "checkpoint": .string(served.path), "settings": r.json,
        ]))
    }

    /// GET /api/models: each model with its defaults and some words it knows, and the limits.
    var modelsJSON: JSONValue {
        .object([
            "models": .array(models.map { m in
                .object(["id": .string(m.id), "label": .string(m.label), "stage": .string(m.stage), "checkpoint": .string(m.path),
                         "image_shape": .array(m.model.spec.itemShape.map { .number(Double($0)) }),
                         "defaults": .object(["solver": .string(m.defaults.solver.rawValue), "steps": .number(Double(m.defaults.steps)),
                                              "guidance": .number(Double(m.defaults.guidance))]),
                         "words": .array(m.model.tokenizer.words.dropFirst(3).prefix(40).map { .string($0) })])
            }),
            "solvers": .array(SolverKind.allCases.map { .string($0.rawValue) }),
            "limits": .object(["max_pending": .number(Double(limits.maxPending)), "max_body_bytes": .number(Double(limits.maxBodyBytes)),
                               "time_limit_seconds": .number(limits.timeLimit), "max_count": .number(Double(limits.maxCount)),
                               "max_steps": .number(Double(limits.maxSteps))]),
        ])
    }
}

func jsonResponse(_ status: HTTPStatusCode, _ value: JSONValue) throws -> HTTPResponse {
    HTTPResponse(statusCode: status, headers: [.contentType: "application/json"], body: try value.makeData(options: [.sortedKeys, .withoutEscapingSlashes]))
}

/// The error that ended the server's run loop, read by `start` while it waits.
private final class FailureBox: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: Error?
    func set(_ e: Error) { lock.lock(); stored = e; lock.unlock() }
    var error: Error? { lock.lock(); defer { lock.unlock() }; return stored }
}
