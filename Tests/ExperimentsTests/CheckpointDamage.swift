import Foundation
import Autograd
import Formats
import TensorCore

// Damaged and crafted checkpoints for CheckpointDamageTests: random damage (bit flips, zeroed
// or garbage blocks, truncation), crafted metadata with a valid checksum (what the validators
// must refuse), crafted headers (shape/offset/dtype lies, huge sizes) and non-finite values.

/// The four checkpoint kinds the loaders read.
enum DamageTarget: String, CaseIterable { case mlp, unet, classifier, state }

/// What was done to a file. Crafted files must be refused; randomly damaged ones must be refused
/// or load bit-identically (the damage hit bytes nothing reads).
enum Damage: String, CaseIterable {
    case bitFlips, headerBitFlip, dataBitFlip, zeroBlock, garbageBlock, truncation
    case craftedMetadata, craftedHeader, nonFinite, nonFiniteNoChecksum

    var mustBeRefused: Bool { ![.bitFlips, .headerBitFlip, .dataBitFlip, .zeroBlock, .garbageBlock].contains(self) }
}

/// A safetensors file split into its JSON header (as a dictionary) and its data section.
struct RawSafetensors {
    var header: [String: Any]
    var data: Data

    init(_ bytes: Data) throws {
        let n = Int(bytes.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        header = try JSONSerialization.jsonObject(with: bytes.subdata(in: 8..<(8 + n))) as! [String: Any]
        data = bytes.subdata(in: (8 + n)..<bytes.count)
    }

    var bytes: Data {
        let json = try! JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        var out = Data(withUnsafeBytes(of: UInt64(json.count).littleEndian) { Array($0) })
        out += json
        out += data
        return out
    }

    var tensorNames: [String] { header.keys.filter { $0 != "__metadata__" }.sorted() }
    var metadata: [String: String] {
        get { header["__metadata__"] as? [String: String] ?? [:] }
        set { header["__metadata__"] = newValue }
    }
}

struct DamageMaker {
    var rng: RNG

    mutating func int(_ r: ClosedRange<Int>) -> Int { r.lowerBound + rng.int(below: r.count) }
    mutating func pick<T>(_ xs: [T]) -> T { xs[rng.int(below: xs.count)] }

    /// The damaged bytes of `pristine` (a file of kind `target`), and a short description.
    mutating func damage(_ pristine: Data, target: DamageTarget, kind: Damage) throws -> (Data, String) {
        var b = pristine
        let headerEnd = 8 + Int(b.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        switch kind {
        case .bitFlips:
            let n = int(1...8)
            for _ in 0..<n { let i = int(0...(b.count - 1)); b[i] ^= UInt8(1) << UInt8(int(0...7)) }
            return (b, "\(n) random bit flips")
        case .headerBitFlip:
            let i = int(0...(headerEnd - 1)); b[i] ^= UInt8(1) << UInt8(int(0...7))
            return (b, "bit flip at header byte \(i)")
        case .dataBitFlip:
            let i = int(headerEnd...(b.count - 1)); b[i] ^= UInt8(1) << UInt8(int(0...7))
            return (b, "bit flip at data byte \(i)")
        case .zeroBlock, .garbageBlock:
            let start = int(0...(b.count - 1)), len = min(int(1...4096), b.count - start)
            for i in start..<(start + len) { b[i] = kind == .zeroBlock ? 0 : UInt8(truncatingIfNeeded: int(0...255)) }
            return (b, "\(kind == .zeroBlock ? "zeroed" : "garbage") block [\(start), \(start + len))")
        case .truncation:
            let n = int(0...(b.count - 1))
            return (b.prefix(n), "truncated to \(n) of \(b.count) bytes")
        case .craftedMetadata:
            return try craftMetadata(pristine, target: target)
        case .craftedHeader:
            return try craftHeader(pristine)
        case .nonFinite, .nonFiniteNoChecksum:
            var raw = try RawSafetensors(pristine)
            let name = pick(raw.tensorNames)
            let info = raw.header[name] as! [String: Any]
            let offsets = info["data_offsets"] as! [Int]
            let count = (offsets[1] - offsets[0]) / 4
            let value = pick([Float.nan, .infinity, -.infinity])
            let at = offsets[0] + 4 * int(0...(count - 1))
            withUnsafeBytes(of: value.bitPattern.littleEndian) { raw.data.replaceSubrange(at..<(at + 4), with: $0) }
            if kind == .nonFinite {
                // Re-checksummed, as a buggy writer would: only the finiteness check can refuse it.
                raw.metadata.removeValue(forKey: Safetensors.checksumKey)
                return (try rewrite(raw), "\(value) in '\(name)' with a valid checksum")
            }
            raw.metadata.removeValue(forKey: Safetensors.checksumKey)
            return (raw.bytes, "\(value) in '\(name)', no checksum (as Python writes)")
        }
    }

    /// `raw` written by our writer (so with a valid checksum), tensors converted from F32.
    func rewrite(_ raw: RawSafetensors) throws -> Data {
        var tensors: [(String, Tensor)] = []
        for name in raw.tensorNames {
            let info = raw.header[name] as! [String: Any]
            let offsets = info["data_offsets"] as! [Int], shape = info["shape"] as! [Int]
            let s = Storage(uninitializedCount: (offsets[1] - offsets[0]) / 4)
            raw.data.withUnsafeBytes { src in
                UnsafeMutableRawPointer(s.ptr).copyMemory(from: src.baseAddress! + offsets[0], byteCount: offsets[1] - offsets[0])
            }
            tensors.append((name, Tensor(shape: shape, storage: s)))
        }
        let url = URL(fileURLWithPath: NSTemporaryDirectory() + "damage-rewrite-\(getpid()).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try Safetensors.write(tensors, metadata: raw.metadata, to: url)
        return try Data(contentsOf: url)
    }

    mutating func craftMetadata(_ pristine: Data, target: DamageTarget) throws -> (Data, String) {
        var raw = try RawSafetensors(pristine)
        var meta = raw.metadata
        meta.removeValue(forKey: Safetensors.checksumKey)
        var what: String
        switch target {
        case .mlp, .unet:
            var spec = try JSONSerialization.jsonObject(with: Data(meta["model_spec"]!.utf8)) as! [String: Any]
            let crafts: [(String, Any)] = [
                ("groups", 0), ("textHeads", 0), ("hidden", -5), ("hidden", 1 << 40), ("depth", 1_000_000),
                ("levels", [1 << 30]), ("levels", []), ("textWidth", 0), ("channels", 0), ("height", -1),
                ("width", 1 << 50), ("timeEmbedding", 3), ("vocabularySize", 2), ("maxTokens", 0), ("dropout", 5),
                ("blocksPerLevel", 0), ("attentionLevels", [7]), ("kind", "transformer"), ("textLayers", 100_000),
                ("groups", -8), ("textHeads", 3), ("levels", [12, 24]),
            ]
            let tokenizerCrafts = ["{", "{\"words\": [\"a\"], \"max_tokens\": 4}", "{\"words\": [\"<pad>\", \"<unk>\", \"<start>\"], \"max_tokens\": 0}",
                                   "{\"words\": [\"<pad>\", \"<unk>\", \"<start>\"], \"max_tokens\": -3}", "[]"]
            if int(0...4) == 0 {
                let t = pick(tokenizerCrafts)
                meta["tokenizer"] = t
                what = "tokenizer = \(t)"
            } else if int(0...9) == 0 {
                meta["model_spec"] = pick(["not json", "{}", "[1, 2]", ""])
                what = "model_spec = \(meta["model_spec"]!)"
            } else {
                let (k, v) = pick(crafts)
                spec[k] = v
                meta["model_spec"] = String(decoding: try JSONSerialization.data(withJSONObject: spec), as: UTF8.self)
                what = "model_spec.\(k) = \(v)"
            }
        case .classifier:
            let crafts: [(String, String)] = [
                ("input_shape", "0,8,8"), ("input_shape", "1,8"), ("input_shape", "1,99999999,8"), ("input_shape", "-1,8,8"),
                ("classes", "0"), ("classes", "-1"), ("classes", "abc"), ("classes", "99999999999"),
                ("feature_width", "1000000000"), ("feature_width", "0"), ("arch", "resnet"), ("input_shape", ""),
            ]
            if int(0...3) == 0 {
                // A first conv whose width (its first dimension) is absurd: 0, not divisible, huge.
                let width = pick([0, 12, 5000])
                let name = "conv1.weight"
                var tensors = try tensorsOf(raw)
                tensors = tensors.map { $0.0 == name ? (name, Tensor(shape: [width, 1, 3, 3], storage: Storage(zeros: width * 9))) : $0 }
                return (try write(tensors, meta), "conv1.weight of width \(width)")
            }
            let (k, v) = pick(crafts)
            meta[k] = v
            what = "\(k) = \(v)"
        case .state:
            let crafts: [(String, String)] = [
                ("step", "-1"), ("step", "abc"), ("version", "9"), ("format", "other"), ("ema.decay", "nan"),
                ("ema.updates", "-4"), ("optimizer.steps", "{\"x\": -1}"), ("optimizer.steps", "not json"),
                ("rng.data", "garbage"), ("weights.model_spec", "{\"kind\": \"mlp\"}"), ("ema.decay", "7"),
            ]
            if int(0...3) == 0 {
                var tensors = try tensorsOf(raw)
                let prefix = pick(["model.", "ema.", "optimizer.exp_avg."])
                if let i = tensors.firstIndex(where: { $0.0.hasPrefix(prefix) }) {
                    let choice = int(0...2)
                    if choice == 0 { let n = tensors.remove(at: i).0; return (try write(tensors, meta), "tensor \(n) removed") }
                    if choice == 1 { tensors.append(("junk", Tensor.zeros([3]))); return (try write(tensors, meta), "unexpected tensor 'junk'") }
                    let n = tensors[i].0
                    tensors[i] = (n, Tensor.zeros([tensors[i].1.count + 1]))
                    return (try write(tensors, meta), "tensor \(n) of the wrong shape")
                }
            }
            let (k, v) = pick(crafts)
            meta[k] = v
            what = "\(k) = \(v)"
        }
        raw.metadata = meta
        return (try rewrite(raw), "crafted metadata: \(what)")
    }

    func tensorsOf(_ raw: RawSafetensors) throws -> [(String, Tensor)] {
        let url = URL(fileURLWithPath: NSTemporaryDirectory() + "damage-read-\(getpid()).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try raw.bytes.write(to: url)
        let a = try Safetensors.read(url)
        return a.names.map { ($0, a.tensors[$0]!) }
    }

    func write(_ tensors: [(String, Tensor)], _ meta: [String: String]) throws -> Data {
        let url = URL(fileURLWithPath: NSTemporaryDirectory() + "damage-write-\(getpid()).safetensors")
        defer { try? FileManager.default.removeItem(at: url) }
        try Safetensors.write(tensors, metadata: meta, to: url)
        return try Data(contentsOf: url)
    }

    mutating func craftHeader(_ pristine: Data) throws -> (Data, String) {
        var raw = try RawSafetensors(pristine)
        let name = pick(raw.tensorNames)
        var info = raw.header[name] as! [String: Any]
        let offsets = info["data_offsets"] as! [Int], shape = info["shape"] as! [Int]
        let choice = int(0...13)
        var what = ""
        switch choice {
        case 0: info["shape"] = shape.map { $0 + 1 }; what = "shape + 1"
        case 1: info["data_offsets"] = [offsets[0], offsets[1] + 4]; what = "end + 4"
        case 2: info["data_offsets"] = [-4, offsets[1]]; what = "negative begin"
        case 3: info["data_offsets"] = [0, 1 << 62]; what = "end 2^62"
        case 4: info["shape"] = [0, 1 << 62, 1 << 62]; info["data_offsets"] = [0, 0]; what = "shape [0, 2^62, 2^62]"
        case 5: info["shape"] = [Int](repeating: 1, count: 100) + [shape.reduce(1, *)]; what = "rank 101"
        case 6: info["dtype"] = pick(["F16", "Q4", "F64", ""]); what = "dtype \(info["dtype"]!)"
        case 7: info["shape"] = [1 << 31, 1 << 31, 1 << 31]; what = "shape 2^93 elements"
        case 8:
            // Another tensor's bytes: overlap.
            let other = raw.tensorNames.first { $0 != name } ?? name
            info["data_offsets"] = (raw.header[other] as! [String: Any])["data_offsets"]; what = "offsets of '\(other)' (overlap)"
        case 9: info["shape"] = [-shape.reduce(1, *)]; what = "negative shape"
        case 10:
            // The length field lies: beyond the file, or inside the JSON.
            var b = raw.bytes
            let n = pick([UInt64(b.count), UInt64(1) << 40, 3, UInt64.max])
            withUnsafeBytes(of: n.littleEndian) { b.replaceSubrange(0..<8, with: $0) }
            return (b, "crafted header: length field \(n)")
        case 11: raw.header["__metadata__"] = ["step": 3]; return (raw.bytes, "crafted header: metadata value not a string")
        case 12:
            // JSON nested a hundred thousand deep (a recursive parser would overflow its stack).
            let json = Data(String(repeating: "{\"a\":", count: 100_000).utf8) + Data("1".utf8) + Data(String(repeating: "}", count: 100_000).utf8)
            return (Data(withUnsafeBytes(of: UInt64(json.count).littleEndian) { Array($0) }) + json + raw.data, "crafted header: nested 100000 deep")
        default: info["data_offsets"] = [offsets[0]]; what = "one offset"
        }
        raw.header[name] = info
        return (raw.bytes, "crafted header: '\(name)' \(what)")
    }
}
