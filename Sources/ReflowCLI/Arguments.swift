import ArgumentParser
import Diffusion
import Flow
import Models

// Enum-typed flags: ArgumentParser lists the valid values in --help and in its errors, and
// shells get completions.
extension SolverKind: ExpressibleByArgument {}
extension DiffusionSamplerKind: ExpressibleByArgument {}
extension EvaluatorArch: ExpressibleByArgument {}

/// `--steps 1,2,4` as the config override `key=[1,2,4]`: the config decodes and checks it, so
/// its error names the flag's key (`--set: eval.steps: expected a list of int, ...`).
public func listOverride(_ key: String, _ commaSeparated: String) -> String {
    "\(key)=[\(commaSeparated)]"
}
