import ConfigKit

/// The config engine's own solver names (the same spelling as Flow's, so messages read alike).
public enum SolverChoice: String, CaseIterable, ConfigEnum {
    case euler, heun, rk4, dopri5
}

/// A small config of our own, so these tests do not depend on ExperimentConfig's defaults.
public struct Optim: ConfigSection, Equatable {
    public var lr: Float = 1e-3
    public var betas: [Float] = [0.9, 0.999]
    public init() {}
    public mutating func visit(_ v: inout ConfigVisitor) throws {
        try v.field("lr", &lr, doc: "learning rate")
        try v.field("betas", &betas, doc: "Adam betas")
        v.check(lr > 0, "lr", "must be positive")
    }
}

public struct Toy: ConfigSection, Equatable {
    public var name = "toy"
    public var steps = 100
    public var scale = 0.5
    public var verbose = false
    public var tags: [String] = []
    public var limit: Int? = nil
    public var solver = SolverChoice.euler
    public var fallback: SolverChoice? = nil
    public var optim = Optim()
    public init() {}
    public mutating func visit(_ v: inout ConfigVisitor) throws {
        try v.field("name", &name, doc: "run name")
        try v.field("steps", &steps, doc: "training steps")
        try v.field("scale", &scale)
        try v.field("verbose", &verbose)
        try v.field("tags", &tags)
        try v.field("limit", &limit)
        try v.field("solver", &solver)
        try v.field("fallback", &fallback)
        try v.section("optim", &optim, doc: "optimizer")
    }
}

/// The error text of a failing decode.
public func errorText(_ body: () throws -> Any) -> String {
    do {
        _ = try body()
        return "no error"
    } catch {
        return "\(error)"
    }
}
