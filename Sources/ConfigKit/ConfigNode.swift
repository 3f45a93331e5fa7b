import Foundation
import Yams

/// A YAML document reduced to what configs need: ordered mappings, sequences and scalars.
/// Each node remembers its key path, line and source so that every error can point at it.
/// Scalars keep their text: the field that reads a scalar decides what it means, so `name: no`
/// is the string "no" and `steps: "5"` is a string, not an integer (no YAML 1.1 guessing).
public struct ConfigNode: Equatable {
    public enum Value: Equatable {
        case mapping([ConfigEntry])
        case sequence([ConfigNode])
        /// `quoted` is true for '...', "..." and block scalars: such text is always a string.
        case scalar(String, quoted: Bool)
    }

    public var value: Value
    /// Key path from the root, e.g. `teacher.lr` or `model.channels[1]`; "" for the root.
    public var path: String
    /// 1-based line in `source`, when known (nil for `--set` values and dumped configs).
    public var line: Int?
    /// The file the node was read from, or "--set".
    public var source: String

    public init(_ value: Value, path: String = "", line: Int? = nil, source: String = "") {
        self.value = value
        self.path = path
        self.line = line
        self.source = source
    }

    /// A plain `~`, `null` or empty scalar (YAML's null).
    public var isNull: Bool {
        guard case .scalar(let s, false) = value else { return false }
        return s.isEmpty || s == "~" || s == "null" || s == "Null" || s == "NULL"
    }

    /// The entries when this node is a mapping.
    public var entries: [ConfigEntry]? {
        if case .mapping(let e) = value { return e }
        return nil
    }

    /// The value at a dotted key path below this node, if every step is a mapping key.
    public subscript(path keyPath: String) -> ConfigNode? {
        var node = self
        for key in keyPath.split(separator: ".", omittingEmptySubsequences: false) {
            guard let next = node.entries?.first(where: { $0.key == key })?.node else { return nil }
            node = next
        }
        return node
    }

    /// How the node reads in an error message: `'many'`, `the string "5"`, `null`, `a list`.
    public var found: String {
        switch value {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .scalar(let s, let quoted):
            if quoted { return "the string \(yamlDoubleQuoted(s))" }
            return isNull ? "null" : "'\(s)'"
        }
    }
}

public struct ConfigEntry: Equatable {
    public var key: String
    /// Line of the key itself (where "unknown key" errors point).
    public var keyLine: Int?
    public var node: ConfigNode

    public init(key: String, keyLine: Int? = nil, node: ConfigNode) {
        self.key = key
        self.keyLine = keyLine
        self.node = node
    }
}

func joinPath(_ prefix: String, _ key: String) -> String {
    prefix.isEmpty ? key : prefix + "." + key
}

// MARK: - Parsing

extension ConfigNode {
    /// Parses a YAML document. An empty document is an empty mapping; anything but a mapping at
    /// the top level is an error. Duplicate keys are errors (libyaml would keep both silently).
    /// YAML merge keys (`<<: *defaults`) are applied: explicit keys win over merged ones.
    public static func parse(yaml: String, source: String) throws -> ConfigNode {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            throw ConfigError(yamlError: error, source: source)
        }
        guard let root else { return ConfigNode(.mapping([]), line: nil, source: source) }
        let node = try convert(root, path: "", source: source)
        guard case .mapping = node.value else {
            throw ConfigError([ConfigIssue(source: source, line: node.line,
                                           message: "expected a mapping of keys at the top level, found \(node.found)")])
        }
        return node
    }

    static func convert(_ n: Node, path: String, source: String) throws -> ConfigNode {
        let line = n.mark?.line
        switch n {
        case .scalar(let s):
            return ConfigNode(.scalar(s.string, quoted: s.style != .plain && s.style != .any),
                              path: path, line: line, source: source)
        case .sequence(let seq):
            var items: [ConfigNode] = []
            for (i, item) in seq.enumerated() {
                items.append(try convert(item, path: path + "[\(i)]", source: source))
            }
            return ConfigNode(.sequence(items), path: path, line: line, source: source)
        case .mapping(let map):
            var entries: [ConfigEntry] = []
            var merged: [ConfigEntry] = []
            for (k, v) in map {
                guard case .scalar(let ks) = k else {
                    throw ConfigError([ConfigIssue(source: source, line: k.mark?.line,
                                                   message: "\(path.isEmpty ? "top level" : path): keys must be plain text")])
                }
                let key = ks.string
                if key == "<<" && (ks.style == .plain || ks.style == .any) {
                    let parts: [Node]
                    if case .sequence(let s) = v { parts = Array(s) } else { parts = [v] }
                    for part in parts {
                        let c = try convert(part, path: path, source: source)
                        guard let e = c.entries else {
                            throw ConfigError([ConfigIssue(source: source, line: c.line,
                                                           message: "\(joinPath(path, "<<")): a merge key needs a mapping or a list of mappings, found \(c.found)")])
                        }
                        merged.append(contentsOf: e)
                    }
                    continue
                }
                let childPath = joinPath(path, key)
                if entries.contains(where: { $0.key == key }) {
                    throw ConfigError([ConfigIssue(source: source, line: k.mark?.line, message: "duplicate key '\(childPath)'")])
                }
                entries.append(ConfigEntry(key: key, keyLine: k.mark?.line,
                                           node: try convert(v, path: childPath, source: source)))
            }
            // Earlier merge sources win over later ones, explicit keys over all (YAML merge rules).
            for e in merged where !entries.contains(where: { $0.key == e.key }) { entries.append(e) }
            return ConfigNode(.mapping(entries), path: path, line: line, source: source)
        }
    }
}

// MARK: - --set overrides

extension ConfigNode {
    /// Applies one `a.b.c=value` override. The value is parsed as YAML (`5`, `cosine`,
    /// `[32, 64]`, `"text"`; empty means null). Missing sections on the way are created; the key
    /// itself is not checked here: decoding reports unknown keys, naming "--set" as their source.
    public mutating func applyOverride(_ text: String) throws {
        func fail(_ message: String) -> ConfigError {
            ConfigError([ConfigIssue(source: "--set", line: nil, message: message)])
        }
        guard let eq = text.firstIndex(of: "=") else {
            throw fail("'\(text)': expected key.path=value")
        }
        let keyPath = text[..<eq].trimmingCharacters(in: .whitespaces)
        let valueText = String(text[text.index(after: eq)...])
        let keys = keyPath.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard !keyPath.isEmpty, !keys.contains(where: \.isEmpty) else {
            throw fail("'\(text)': expected key.path=value")
        }
        let parsed: Node?
        do {
            parsed = try Yams.compose(yaml: valueText)
        } catch let error as YamlError {
            throw fail("\(keyPath): cannot read '\(valueText)' as a YAML value (\(yamlProblem(error).message))")
        }
        let value = try parsed.map { try ConfigNode.convert($0, path: keyPath, source: "--set") }
            ?? ConfigNode(.scalar("", quoted: false), path: keyPath, source: "--set")
        try set(keys[...], to: stripLines(value), override: text)
    }

    private mutating func set(_ keys: ArraySlice<String>, to newValue: ConfigNode, override: String) throws {
        if isNull {
            // `train:` with nothing under it is an empty section: give it the key.
            value = .mapping([])
            source = "--set"
        }
        guard case .mapping(var entries) = value else {
            throw ConfigError([ConfigIssue(source: "--set", line: nil,
                                           message: "'\(override)': '\(path)' is not a section")])
        }
        let key = keys.first!
        let childPath = joinPath(path, key)
        let index = entries.firstIndex(where: { $0.key == key })
        if keys.count == 1 {
            if let index { entries[index].node = newValue } else {
                entries.append(ConfigEntry(key: key, node: newValue))
            }
        } else {
            var child = index.map { entries[$0].node }
                ?? ConfigNode(.mapping([]), path: childPath, source: "--set")
            try child.set(keys.dropFirst(), to: newValue, override: override)
            if let index { entries[index].node = child } else { entries.append(ConfigEntry(key: key, node: child)) }
        }
        value = .mapping(entries)
    }

    /// Line numbers of a parsed `--set` value refer to the one-line value text: drop them.
    private func stripLines(_ n: ConfigNode) -> ConfigNode {
        var n = n
        n.line = nil
        switch n.value {
        case .scalar: break
        case .sequence(let items): n.value = .sequence(items.map(stripLines))
        case .mapping(let es):
            n.value = .mapping(es.map { ConfigEntry(key: $0.key, keyLine: nil, node: stripLines($0.node)) })
        }
        return n
    }
}

// MARK: - Emitting YAML

extension ConfigNode {
    /// Block-style YAML for mappings, flow style for lists (`channels: [32, 64]`).
    public func yaml() -> String {
        var out = ""
        switch value {
        case .mapping(let entries):
            if entries.isEmpty { return "{}\n" }
            emitBlock(entries, indent: 0, into: &out)
        default:
            out = flow() + "\n"
        }
        return out
    }

    private func emitBlock(_ entries: [ConfigEntry], indent: Int, into out: inout String) {
        let pad = String(repeating: " ", count: indent)
        for e in entries {
            let key = yamlKey(e.key)
            if case .mapping(let sub) = e.node.value, !sub.isEmpty {
                out += "\(pad)\(key):\n"
                emitBlock(sub, indent: indent + 2, into: &out)
            } else {
                out += "\(pad)\(key): \(e.node.flow())\n"
            }
        }
    }

    private func flow() -> String {
        switch value {
        case .scalar(let s, let quoted):
            if quoted { return yamlDoubleQuoted(s) }
            if isNull { return "null" }
            return isPlainSafe(s) ? s : yamlDoubleQuoted(s)
        case .sequence(let items):
            return "[" + items.map { $0.flow() }.joined(separator: ", ") + "]"
        case .mapping(let entries):
            return "{" + entries.map { "\(yamlKey($0.key)): \($0.node.flow())" }.joined(separator: ", ") + "}"
        }
    }
}

private func yamlKey(_ k: String) -> String {
    isPlainString(k) ? k : yamlDoubleQuoted(k)
}

/// Whether plain text can be written as is and read back as the same plain scalar, also inside
/// a flow list (so no `,[]{}`, no `: ` or ` #`, no indicator at the start).
private func isPlainSafe(_ s: String) -> Bool {
    guard let first = s.unicodeScalars.first, let last = s.unicodeScalars.last else { return false }
    if first == " " || last == " " { return false }
    if "-?:".unicodeScalars.contains(first), s.unicodeScalars.count == 1 || s.unicodeScalars.dropFirst().first == " " { return false }
    if "!&*|>'\"%@`#".unicodeScalars.contains(first) { return false }
    if s.contains(": ") || s.contains(" #") || s.hasSuffix(":") { return false }
    return !s.unicodeScalars.contains { ",[]{}\n\r\t".unicodeScalars.contains($0) || $0.value < 0x20 || $0.value == 0x7F }
}

/// Whether a string may be written without quotes and still read back as that same string by
/// any YAML reader: starts with a letter, only letters/digits/`_./-` and single inner spaces,
/// and is not a word YAML 1.1 would take for null or a boolean.
func isPlainString(_ s: String) -> Bool {
    guard let first = s.unicodeScalars.first, first.isASCIILetter || first == "_" || first == "/" else { return false }
    if s.hasSuffix(" ") || s.contains("  ") { return false }
    let ok = s.unicodeScalars.allSatisfy { $0.isASCIILetter || ("0"..."9").contains($0) || "_./- ".unicodeScalars.contains($0) }
    guard ok else { return false }
    let reserved: Set<String> = ["null", "true", "false", "yes", "no", "on", "off", "y", "n"]
    return !reserved.contains(s.lowercased())
}

extension Unicode.Scalar {
    fileprivate var isASCIILetter: Bool { ("a"..."z").contains(self) || ("A"..."Z").contains(self) }
}

/// A YAML double-quoted scalar (JSON-compatible escapes).
public func yamlDoubleQuoted(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        case "\r": out += "\\r"
        default:
            if u.value < 0x20 || u.value == 0x7F {
                out += "\\u" + String(repeating: "0", count: 4 - String(u.value, radix: 16).count) + String(u.value, radix: 16)
            } else {
                out.unicodeScalars.append(u)
            }
        }
    }
    return out + "\""
}

// MARK: - Errors

/// One problem in a config, located as `source:line: message`.
public struct ConfigIssue: Error, Equatable, CustomStringConvertible {
    public var source: String
    public var line: Int?
    public var message: String

    public init(source: String, line: Int?, message: String) {
        self.source = source
        self.line = line
        self.message = message
    }

    public var description: String {
        if let line { return "\(source):\(line): \(message)" }
        return "\(source): \(message)"
    }
}

/// Every problem found while reading a config (all are reported at once, one per line).
public struct ConfigError: Error, CustomStringConvertible, LocalizedError {
    public var issues: [ConfigIssue]

    public init(_ issues: [ConfigIssue]) { self.issues = issues }

    public var description: String { issues.map(\.description).joined(separator: "\n") }
    public var errorDescription: String? { description }

    init(yamlError: YamlError, source: String) {
        let p = yamlProblem(yamlError)
        self.init([ConfigIssue(source: source, line: p.line, message: "invalid YAML: \(p.message)")])
    }
}

private func yamlProblem(_ e: YamlError) -> (line: Int?, message: String) {
    switch e {
    case let .scanner(context, problem, mark, _), let .parser(context, problem, mark, _),
         let .composer(context, problem, mark, _):
        let ctx = context.map { "\($0.text) (line \($0.mark.line)), " } ?? ""
        return (mark.line, ctx + problem)
    case let .reader(problem, _, _, _):
        return (nil, problem)
    default:
        return (nil, e.description)
    }
}
