import Foundation
import FlyingFox
import Flow
import Models

/// What the server accepts and how long it works on a request. Set by `reflow serve`'s flags.
public struct ServeLimits: Sendable {
    /// Requests waiting or running at once; one more gets 503.
    public var maxPending: Int
    /// Largest request body in bytes; a larger one gets 413.
    public var maxBodyBytes: Int
    /// Seconds from a request's arrival to its answer (queue wait included); then 504.
    public var timeLimit: Double
    /// Images per request.
    public var maxCount: Int
    /// Solver steps per request.
    public var maxSteps: Int
    public static let maxPromptCharacters = 200

    public init(maxPending: Int, maxBodyBytes: Int, timeLimit: Double, maxCount: Int, maxSteps: Int) {
        self.maxPending = maxPending; self.maxBodyBytes = maxBodyBytes; self.timeLimit = timeLimit
        self.maxCount = maxCount; self.maxSteps = maxSteps
    }
}

/// A request's error: the HTTP status, the field it is about (if one) and what is wrong.
public struct ServeError: Error, CustomStringConvertible {
    public let status: HTTPStatusCode
    public let field: String?
    public let message: String
    public init(_ status: HTTPStatusCode, field: String? = nil, _ message: String) {
        self.status = status; self.field = field; self.message = message
    }
    public var description: String { field.map { "\($0): \(message)" } ?? message }
}

/// A checked POST /api/generate body: every field present, in range, with the model's defaults
/// filled in.
public struct GenerateRequest: Equatable {
    public var prompt: String
    public var model: String
    public var solver: SolverKind
    public var steps: Int
    public var guidance: Float
    public var seed: UInt64
    public var count: Int

    static let fields = ["prompt", "model", "solver", "steps", "guidance", "seed", "count"]
    /// Seeds are JSON numbers, exact as integers up to 2^53.
    static let maxSeed = 9_007_199_254_740_991.0

    /// Parses and checks a JSON body; each error names the field (400).
    public static func parse(_ body: Data, models: [ServedModel], limits: ServeLimits) throws -> GenerateRequest {
        guard let json = try? JSONValue(data: body), case .object(let o) = json else {
            throw ServeError(.badRequest, "the body must be a JSON object such as {\"prompt\": \"the number 7\", \"model\": \"\(models[0].id)\"}")
        }
        if let unknown = o.keys.sorted().first(where: { !fields.contains($0) }) {
            throw ServeError(.badRequest, field: unknown, "unknown field; the fields are \(fields.joined(separator: ", "))")
        }
        guard case .string(let prompt)? = o["prompt"] else {
            throw ServeError(.badRequest, field: "prompt", o["prompt"] == nil ? "missing (use \"\" for the unconditional prompt)" : "must be a string")
        }
        guard prompt.count <= ServeLimits.maxPromptCharacters else {
            throw ServeError(.badRequest, field: "prompt", "\(prompt.count) characters; at most \(ServeLimits.maxPromptCharacters)")
        }
        var served = models[0]
        if let m = o["model"] {
            let ids = models.map(\.id).joined(separator: ", ")
            guard case .string(let id) = m else { throw ServeError(.badRequest, field: "model", "must be a string, one of \(ids)") }
            guard let found = models.first(where: { $0.id == id }) else {
                throw ServeError(.badRequest, field: "model", "unknown model '\(id)'; this server has \(ids)")
            }
            served = found
        }
        let unknown = served.model.tokenizer.unknownWords(in: prompt)
        if !unknown.isEmpty {
            let some = served.model.tokenizer.words.dropFirst(Tokenizer.reserved.count).prefix(12).joined(separator: ", ")
            throw ServeError(.badRequest, field: "prompt", "\(unknown.map { "'\($0)'" }.joined(separator: ", ")) not in the model's vocabulary (e.g. \(some), ...)")
        }
        var solver = served.defaults.solver
        if let s = o["solver"] {
            let names = SolverKind.allCases.map(\.rawValue).joined(separator: ", ")
            guard case .string(let name) = s, let kind = SolverKind(rawValue: name) else {
                throw ServeError(.badRequest, field: "solver", "must be one of \(names)")
            }
            solver = kind
        }
        let d = served.defaults
        let steps = try integer(o, "steps", default: d.steps, in: 1...limits.maxSteps)
        let count = try integer(o, "count", default: 1, in: 1...limits.maxCount)
        let seed = try integer(o, "seed", default: 0, in: 0...maxSeed)
        var guidance = d.guidance
        if let g = o["guidance"] {
            guard case .number(let w) = g, w.isFinite, w >= 0, w <= 20 else {
                throw ServeError(.badRequest, field: "guidance", "must be a number from 0 to 20 (1 = no guidance)")
            }
            guidance = Float(w)
        }
        return GenerateRequest(prompt: prompt, model: served.id, solver: solver, steps: Int(steps), guidance: guidance,
                               seed: UInt64(seed), count: Int(count))
    }

    private static func integer(_ o: [String: JSONValue], _ key: String, default d: Int,
                                in range: ClosedRange<Double>) throws -> Double {
        guard let v = o[key] else { return Double(d) }
        guard case .number(let x) = v, x.rounded() == x, range.contains(x) else {
            throw ServeError(.badRequest, field: key, "must be an integer from \(Int(range.lowerBound)) to \(Int(range.upperBound))")
        }
        return x
    }

    private static func integer(_ o: [String: JSONValue], _ key: String, default d: Int,
                                in range: ClosedRange<Int>) throws -> Double {
        try integer(o, key, default: d, in: Double(range.lowerBound)...Double(range.upperBound))
    }

    /// The settings as the answer echoes them.
    public var json: JSONValue {
        .object(["prompt": .string(prompt), "model": .string(model), "solver": .string(solver.rawValue),
                 "steps": .number(Double(steps)), "guidance": .number(Double("\(guidance)") ?? Double(guidance)),
                 "seed": .number(Double(seed)), "count": .number(Double(count))])
    }
}
