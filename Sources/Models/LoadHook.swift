import Foundation

extension FlowModel {
    /// Run on every model `load(from:)` returns, before anyone uses it: the tools' `--lora`
    /// sets it once at start-up, so that sampling, evaluation and pair generation (each of which
    /// loads its checkpoints deep inside) all get the adapters without each threading them
    /// through. nil (the default) changes nothing.
    nonisolated(unsafe) public static var afterLoad: ((FlowModel, URL) throws -> Void)? = nil
}
