import ArgumentParser

/// The scoring flags reflow-eval and `reflow table` share: each sets an `eval.*` config key (the
/// schema holds the defaults), plus the evaluator checkpoints.
public struct EvalOptions: ParsableArguments {
    @Option(name: .long, help: "Comma-separated solver step counts (sets eval.steps).")
    public var steps: String?
    @Option(name: .long, help: "Samples per row and seed (sets eval.samples).")
    public var samples: Int?
    @Option(name: .long, help: "Comma-separated noise seeds, >= 2 to report a spread (sets eval.seeds).")
    public var seeds: String?
    @Option(name: .long, help: "Evaluator checkpoint (default: checkpoints/evaluators/<dataset>.safetensors).")
    public var evaluator: String?
    @Option(name: .long, help: "Second evaluator, another architecture (default: checkpoints/evaluators/<dataset>.vgg.safetensors when it exists).")
    public var secondEvaluator: String?
    @Flag(name: .long, help: "Print JSON instead of Markdown.")
    public var json = false

    public init() {}

    /// The `--set` overrides these flags stand for.
    public var overrides: [String] {
        var out: [String] = []
        if let steps { out.append(listOverride("eval.steps", steps)) }
        if let samples { out.append("eval.samples=\(samples)") }
        if let seeds { out.append(listOverride("eval.seeds", seeds)) }
        return out
    }
}
