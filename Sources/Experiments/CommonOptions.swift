import Foundation
import ConfigKit

/// Loads the experiment config named on the command line, with `--set` overrides and an
/// optional thread count that wins over the config.
public func loadExperiment(configPath: String, overrides: [String], threads: Int?) throws -> ExperimentConfig {
    var all = overrides
    if let threads { all.append("threads=\(threads)") }
    return try loadConfig(ExperimentConfig.self, path: configPath, overrides: all)
}
