import Foundation
import ConfigKit
import Experiments
import Formats
import Adapters
import Models
import NN
import TripletStore

// What the fuzzers feed untrusted bytes to: the same entry points the tools use on files a
// user downloads or gets from elsewhere. A thrown error is the right answer to a bad input; a
// crash, a hang or an unbounded allocation is a bug.

enum FuzzTarget: String, CaseIterable {
    /// safetensors header, metadata and tensors -> a flow model, a classifier, a training state,
    /// a LoRA adapter file.
    case safetensors
    /// YAML config text (or, when the first byte is '=', one `--set key.path=value` override).
    case config
    /// an HDF5 triplet file -> its reader (every row) and the resume path of its writer.
    case triplets

    /// Runs one input. Errors are expected (the replay tool prints them, `log`); anything else
    /// is the fuzzer's find.
    func run(_ bytes: UnsafeRawBufferPointer) {
        switch self {
        case .safetensors: FuzzTarget.loadCheckpoint(bytes)
        case .config: FuzzTarget.decodeConfig(bytes)
        case .triplets: FuzzTarget.readTriplets(bytes)
        }
    }

    /// Where outcomes go: nowhere while fuzzing, standard output when replaying.
    nonisolated(unsafe) static var log: ((String) -> Void)? = nil

    /// `body`'s value, or nil after logging its error (`what` names the entry point).
    static func attempt<T>(_ what: String, _ body: () throws -> T) -> T? {
        do {
            let v = try body()
            log?("  \(what): accepted")
            return v
        } catch {
            log?("  \(what): \(String("\(error)".prefix(300)))")
            return nil
        }
    }

    /// One scratch file per process, rewritten for every input (the loaders take paths).
    static let scratch = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("reflow-fuzz-\(getpid())").path

    static func writeScratch(_ bytes: UnsafeRawBufferPointer, ext: String) -> String {
        let path = scratch + "." + ext
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        return path
    }

    static func loadCheckpoint(_ bytes: UnsafeRawBufferPointer) {
        let url = URL(fileURLWithPath: writeScratch(bytes, ext: "safetensors"))
        _ = attempt("Safetensors.readMetadata") { try Safetensors.readMetadata(url) }
        _ = attempt("FlowModel.load") { try FlowModel.load(from: url) }
        _ = attempt("loadClassifier") { try loadClassifier(from: url) }
        _ = attempt("TrainingState.load") { try TrainingState.load(from: url) }
        if let base = loraBase {
            _ = attempt("LoRASet.load") { try LoRASet.load(url, for: base, baseSHA256: String(repeating: "0", count: 64)) }
        }
    }

    nonisolated(unsafe) static let loraBase: FlowModel? = try? FuzzSeeds.loraBase()

    static func decodeConfig(_ bytes: UnsafeRawBufferPointer) {
        let text = String(decoding: bytes, as: UTF8.self)
        if text.hasPrefix("=") {
            _ = attempt("--set") { try loadConfig(ExperimentConfig.self, yaml: "", source: "fuzz", overrides: [String(text.dropFirst())]) }
        } else {
            _ = attempt("loadConfig") { try loadConfig(ExperimentConfig.self, yaml: text, source: "fuzz") }
        }
    }

    static func readTriplets(_ bytes: UnsafeRawBufferPointer) {
        let path = writeScratch(bytes, ext: "h5")
        var shape = [1, 8, 8], attributes: [String: String] = [:]
        if let r = attempt("TripletReader", { try TripletReader(path: path) }) {
            shape = r.itemShape
            attributes = r.writerAttributes
            // Rows in blocks so a header that claims a huge count cannot ask for a huge buffer.
            var start = 0
            while start < r.count, start < 4096 {
                let end = min(r.count, start + 64)
                guard attempt("read rows \(start)..<\(end)", { try r.read(start..<end) }) != nil else { break }
                start = end
            }
            r.close()
        }
        // What a resumed gen-pairs does: reopen for appending (validates, cuts back to the commit mark).
        if let w = attempt("TripletWriter (resume)", { try TripletWriter(path: path, itemShape: shape, attributes: attributes, mode: .append) }) {
            _ = attempt("close") { try w.close() }
        }
    }
}
