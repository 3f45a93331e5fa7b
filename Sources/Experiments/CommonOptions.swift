import Foundation
import TensorCore

/// Loads the experiment config named on the command line, with `--set` overrides and an
/// optional thread count that wins over the config.
public func loadExperiment(configPath: String, overrides: [String], threads: Int?) throws -> ExperimentConfig {
    var all = overrides
    if let threads { all.append("threads=\(threads)") }
    return try loadConfig(ExperimentConfig.self, path: configPath, overrides: all)
}

/// Prints an error the way every tool does, and exits 1 (no stack trace for user errors).
public func exitWithError(_ error: Error) -> Never {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    exit(1)
}
