import Foundation

/// The ODE solvers a config or a command line can name.
public enum SolverKind: String, CaseIterable, Codable, Sendable {
    case euler, heun, rk4, dopri5
}

/// A solver and its settings: a step count for the fixed-step solvers, tolerances for the
/// adaptive one. It has no defaults (those live in the config sections that build it). It is
/// stored as one JSON value (a triplet file's `solver` attribute, a student's `pairs_solver`
/// metadata) holding only the fields its kind uses, so changing the tolerances of a fixed-step
/// solver does not make a pair file look different:
///
///     {"name":"rk4","steps":8}        {"atol":0.0001,"name":"dopri5","rtol":0.001}
public struct SolverSettings: Equatable, Sendable, CustomStringConvertible {
    public var kind: SolverKind
    public var steps: Int
    public var rtol: Double
    public var atol: Double

    public init(kind: SolverKind, steps: Int, rtol: Double, atol: Double) {
        self.kind = kind; self.steps = steps; self.rtol = rtol; self.atol = atol
    }

    /// The solver these settings describe.
    public func makeSolver() -> ODESolver {
        switch kind {
        case .euler: return Euler(steps: steps)
        case .heun: return Heun(steps: steps)
        case .rk4: return RK4(steps: steps)
        case .dopri5: return DormandPrince(rtol: rtol, atol: atol)
        }
    }

    /// Compact JSON with sorted keys (see the type's doc).
    public var json: String {
        var obj: [String: Any] = ["name": kind.rawValue]
        if kind == .dopri5 { obj["rtol"] = rtol; obj["atol"] = atol } else { obj["steps"] = steps }
        let data = (try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    /// Reads `json`; errors say which field is missing or wrong.
    public init(json text: String) throws {
        guard let obj = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] else {
            throw FlowError(op: "solver settings", "not a JSON object: '\(text)'")
        }
        guard let name = obj["name"] as? String, let kind = SolverKind(rawValue: name) else {
            throw FlowError(op: "solver settings", "'name' must be one of \(SolverKind.allCases.map(\.rawValue).joined(separator: ", ")) in '\(text)'")
        }
        func number(_ key: String) throws -> Double {
            guard let v = obj[key] as? NSNumber else {
                throw FlowError(op: "solver settings", "\(name) needs a numeric '\(key)' in '\(text)'")
            }
            return v.doubleValue
        }
        if kind == .dopri5 {
            self.init(kind: kind, steps: 0, rtol: try number("rtol"), atol: try number("atol"))
        } else {
            let steps = try number("steps")
            guard steps >= 1, steps == steps.rounded() else {
                throw FlowError(op: "solver settings", "'steps' must be a positive integer in '\(text)'")
            }
            self.init(kind: kind, steps: Int(steps), rtol: 0, atol: 0)
        }
    }

    /// Two settings make the same solver (only the fields the kind uses count).
    public func sameSolver(as other: SolverSettings) -> Bool { json == other.json }

    public var description: String { json }
}
