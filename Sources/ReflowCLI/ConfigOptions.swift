import ArgumentParser
import Foundation
import ConfigKit
import Distributed
import Experiments
import Reporting

/// The flags every config-driven tool shares (`@OptionGroup var options: ConfigOptions`):
/// the experiment config, `--set` overrides, the thread count, `--quiet` and `--help-config`.
public struct ConfigOptions: ParsableArguments {
    @Option(name: .long, help: "Experiment config (YAML), e.g. experiments/quickstart.yaml. Required.")
    public var config: String?

    @Option(name: .customLong("set"), help: ArgumentHelp("Override a config key (repeatable).", valueName: "key.path=value"))
    public var overrides: [String] = []

    @Option(name: .long, help: "Threads for our kernels and OpenBLAS (default: the config's).")
    public var threads: Int?

    @Flag(name: .long, help: "Print only warnings and errors on stderr (no progress, no stage banners).")
    public var quiet = false

    @Flag(name: .long, help: "Print every config key with its type, default and meaning, then exit.")
    public var helpConfig = false

    public init() {}

    public func validate() throws {
        if !helpConfig && config == nil { throw ValidationError("missing --config <file.yaml>") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    /// Prints every config key when --help-config was given; the tool then returns. Also applies
    /// --quiet and, under mpirun, the ranks' logging (every tool calls this first).
    public func printedConfigHelp() -> Bool {
        if quiet { Log.level = .warning }
        setUpRanks()
        if helpConfig { print(configHelp(ExperimentConfig.self)) }
        return helpConfig
    }

    /// The config with the `--set` overrides, then `extra` ones (a tool's own flags), then --threads.
    public func load(extra: [String] = []) throws -> ExperimentConfig {
        try loadExperiment(configPath: config ?? "", overrides: overrides + extra, threads: threads)
    }
}

/// Prints an error the way every tool does, and exits 1 (no stack trace for user errors).
/// Under mpirun it ends every rank: the others would wait for this one forever.
public func exitWithError(_ error: Error) -> Never {
    Log.error("\(error)")
    Communicator.world.abort(code: 1)
}
