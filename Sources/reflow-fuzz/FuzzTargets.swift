import Foundation
import ConfigKit
import Experiments
import Formats
import Models
import NN
import TripletStore

// What the fuzzers feed untrusted bytes to: the same entry points the tools use on files a
// user downloads or gets from elsewhere. A thrown error is the right answer to a bad input; a
// crash, a hang or an unbounded allocation is a bug.

enum FuzzTarget: String, CaseIterable {
    /// safetensors header, metadata and tensors -> a flow model, a classifier, a training state.
    case safetensors
    /// YAML config text (or, when the first byte is '=', one `--set key.path=value` override).
    case config
    /// an HDF5 triplet file -> its reader (every row) and the resume path of its writer.
    case triplets

    /// Runs one input. Errors are expected and swallowed; anything else is the fuzzer's find.
    func run(_ bytes: UnsafeRawBufferPointer) {
        switch self {
        case .safetensors: FuzzTarget.loadCheckpoint(bytes)
        case .config: FuzzTarget.decodeConfig(bytes)
        case .triplets: FuzzTarget.readTriplets(bytes)
        }
    }

    /// One scratch file per process, rewritten for every input (the loaders take paths).
    static let scratch = NSTemporaryDirectory() + "/reflow-fuzz-\(getpid())"

    static func writeScratch(_ bytes: UnsafeRawBufferPointer, ext: String) -> String {
        let path = scratch + "." + ext
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
        return path
    }

    static func loadCheckpoint(_ bytes: UnsafeRawBufferPointer) {
        let url = URL(fileURLWithPath: writeScratch(bytes, ext: "safetensors"))
        _ = try? Safetensors.readMetadata(url)
        _ = try? FlowModel.load(from: url)
        _ = try? Classifier.load(from: url)
        _ = try? TrainingState.load(from: url)
    }

    static func decodeConfig(_ bytes: UnsafeRawBufferPointer) {
        let text = String(decoding: bytes, as: UTF8.self)
        if text.hasPrefix("=") {
            _ = try? loadConfig(ExperimentConfig.self, yaml: "", source: "fuzz", overrides: [String(text.dropFirst())])
        } else {
            _ = try? loadConfig(ExperimentConfig.self, yaml: text, source: "fuzz")
        }
    }

    static func readTriplets(_ bytes: UnsafeRawBufferPointer) {
        let path = writeScratch(bytes, ext: "h5")
        var shape = [1, 8, 8], attributes: [String: String] = [:]
        if let r = try? TripletReader(path: path) {
            shape = r.itemShape
            attributes = r.writerAttributes
            // Rows in blocks so a header that claims a huge count cannot ask for a huge buffer.
            var start = 0
            while start < r.count, start < 4096 {
                let end = min(r.count, start + 64)
                guard (try? r.read(start..<end)) != nil else { break }
                start = end
            }
            r.close()
        }
        // What a resumed gen-pairs does: reopen for appending (validates, cuts back to the commit mark).
        if let w = try? TripletWriter(path: path, itemShape: shape, attributes: attributes, mode: .append) {
            try? w.close()
        }
    }
}
