import ArgumentParser
import Foundation
import ConfigKit
import Distributed
import Experiments
import Reporting

/// The flags every config-driven tool shares (`@OptionGroup var options: ConfigOptions`):
/// the experiment config, `--set` overrides, the thread count, `--quiet` and `--help-config`.
public struct ConfigOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Experiment config (YAML), e.g. experiments/quickstart.yaml.", valueName: "file.yaml"))
    public var config: String

    @Option(name: .customLong("set"), help: ArgumentHelp("Override a config key (repeatable).", valueName: "key.path=value"))
    public var overrides: [String] = []

    @Option(name: .long, help: "Threads for our kernels and OpenBLAS (default: the config's).")
    public var threads: Int?

    @Flag(name: .long, help: "Print only warnings and errors on stderr (no progress, no stage banners).")
    public var quiet = false

    /// Handled before parsing (`mainWithReflowErrors(configHelp: true)`), like --help: declared
    /// here so that --help lists it.
    @Flag(name: .long, help: "Print every config key with its type, default and meaning, then exit (needs no --config).")
    public var helpConfig = false

    public init() {}

    public func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    /// Applies --quiet and, under mpirun, the ranks' logging (every tool calls this first).
    public func applyLogLevel() {
        if quiet { Log.level = .warning }
        setUpRanks()
    }

    /// The config with the `--set` overrides, then `extra` ones (a tool's own flags), then --threads.
    public func load(extra: [String] = []) throws -> ExperimentConfig {
        try loadExperiment(configPath: config, overrides: overrides + extra, threads: threads)
    }
}
