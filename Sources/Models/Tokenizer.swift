import Foundation

/// Word-level tokenizer. The vocabulary is built from training captions and saved with the
/// checkpoint (as one JSON string in its metadata). Ids: 0 = padding, 1 = unknown word,
/// 2 = start-of-caption (every sequence begins with it, so an empty prompt is the single
/// start token: the unconditional input used by classifier-free guidance).
public struct Tokenizer: Equatable, Sendable {
    public static let pad = 0, unknown = 1, start = 2
    public static let reserved = ["<pad>", "<unk>", "<start>"]

    public let words: [String]
    private let index: [String: Int]
    public let maxTokens: Int

    public var vocabularySize: Int { words.count }

    public init(words: [String], maxTokens: Int) {
        self.words = words
        self.maxTokens = maxTokens
        var idx: [String: Int] = [:]
        for (i, w) in words.enumerated() { idx[w] = i }
        index = idx
    }

    /// Builds the vocabulary from captions: words seen at least `minCount` times, sorted by
    /// frequency then alphabetically (deterministic whatever the caption order).
    public init(captions: [String], maxTokens: Int, minCount: Int = 1) {
        var counts: [String: Int] = [:]
        for c in captions { for w in Tokenizer.split(c) { counts[w, default: 0] += 1 } }
        let kept = counts.filter { $0.value >= minCount }.sorted { a, b in
            a.value != b.value ? a.value > b.value : a.key < b.key
        }.map(\.key)
        self.init(words: Tokenizer.reserved + kept, maxTokens: maxTokens)
    }

    /// Lower-cased words; punctuation other than '-' and '/' separates words.
    public static func split(_ text: String) -> [String] {
        var out: [String] = []
        var cur = ""
        for ch in text.lowercased() {
            if ch.isLetter || ch.isNumber || ch == "-" || ch == "/" || ch == "'" { cur.append(ch) } else if !cur.isEmpty {
                out.append(cur); cur = ""
            }
        }
        if !cur.isEmpty { out.append(cur) }
        return out
    }

    /// Token ids padded to `maxTokens` and the count of real tokens (start token included).
    /// Unknown words map to the unknown token; captions longer than `maxTokens - 1` words are cut.
    public func encode(_ text: String) -> (ids: [Int], length: Int) {
        var ids = [Tokenizer.start]
        for w in Tokenizer.split(text) where ids.count < maxTokens { ids.append(index[w] ?? Tokenizer.unknown) }
        let n = ids.count
        ids += [Int](repeating: Tokenizer.pad, count: maxTokens - n)
        return (ids, n)
    }

    /// Words of `text` that are not in the vocabulary (for warnings: they become <unk>).
    public func unknownWords(in text: String) -> [String] { Tokenizer.split(text).filter { index[$0] == nil } }

    /// JSON form stored in checkpoint metadata.
    public func serialized() -> String {
        let obj: [String: Any] = ["max_tokens": maxTokens, "words": words]
        let data = (try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }

    /// Bounds on what a checkpoint may hold (the model spec has the same ones).
    public static let maxWords = 1_000_000, maxTokenLimit = 4096

    /// Reads `serialized()`. `source` (the file) prefixes errors; every value is range-checked,
    /// since `encode` pads to `maxTokens` and a model is sized by the vocabulary.
    public static func deserialize(_ json: String, source: String? = nil) throws -> Tokenizer {
        let from = source.map { "\($0): " } ?? ""
        guard let obj = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
              let words = obj["words"] as? [String], let maxTokens = obj["max_tokens"] as? Int else {
            throw TokenizerError("\(from)tokenizer metadata is not valid JSON with 'words' and 'max_tokens'")
        }
        guard words.count >= 3, Array(words.prefix(3)) == reserved else {
            throw TokenizerError("\(from)tokenizer vocabulary must start with \(reserved)")
        }
        guard words.count <= maxWords else {
            throw TokenizerError("\(from)tokenizer vocabulary has \(words.count) words, more than the limit of \(maxWords)")
        }
        guard (1...maxTokenLimit).contains(maxTokens) else {
            throw TokenizerError("\(from)tokenizer max_tokens \(maxTokens) outside 1...\(maxTokenLimit)")
        }
        return Tokenizer(words: words, maxTokens: maxTokens)
    }
}

public struct TokenizerError: Error, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = d }
}
