import Foundation

/// A config section: a struct whose `visit` names each field once. The same `visit` decodes a
/// YAML tree, dumps the resolved values and lists help, so keys, types, defaults and docs are
/// written in one place. Defaults are whatever `init()` sets.
///
///     struct Train: ConfigSection {
///         var steps = 1000
///         var optimizer = Optimizer()
///         mutating func visit(_ v: inout ConfigVisitor) throws {
///             try v.field("steps", &steps, doc: "training steps")
///             try v.section("optimizer", &optimizer)
///             v.check(steps >= 0, "steps", "must not be negative")
///         }
///     }
public protocol ConfigSection {
    init()
    mutating func visit(_ v: inout ConfigVisitor) throws
}

/// A value a config field can hold: it reads itself from a node and writes itself back.
public protocol ConfigValue {
    /// Completes "expected ...": "an integer", "one of euler, heun".
    static var expectation: String { get }
    /// Short type for help: "int", "[float]", "string?", "euler|heun".
    static var typeName: String { get }
    /// Reads the node; throws a `ConfigIssue` naming `node.path` when the node does not fit.
    init(config node: ConfigNode) throws
    var configValue: ConfigNode.Value { get }
}

/// Mark a `String`-backed `CaseIterable` enum as a config value; errors list the valid values.
public protocol ConfigEnum: ConfigValue, CaseIterable, RawRepresentable where RawValue == String {}

/// One line of `--help` output for a config.
public struct ConfigHelpRow: Equatable {
    public var path: String
    /// "section" for sections.
    public var type: String
    /// The default as YAML ("" for sections).
    public var defaultValue: String
    public var doc: String

    public init(path: String, type: String, defaultValue: String, doc: String) {
        self.path = path
        self.type = type
        self.defaultValue = defaultValue
        self.doc = doc
    }
}

/// Walks a config's fields in one of three modes. See `ConfigSection`.
public struct ConfigVisitor {
    public enum Mode { case decode, dump, help }

    public let mode: Mode
    /// Dotted path of the section being visited ("" at the top).
    public let path: String
    /// Decode mode: the mapping being read (nil when the section is absent from the YAML).
    private let node: ConfigNode?
    private let source: String
    private var known: [String] = []
    private(set) var issues: [ConfigIssue] = []
    private(set) var dumped: [ConfigEntry] = []
    private(set) var rows: [ConfigHelpRow] = []

    private init(mode: Mode, path: String, node: ConfigNode?, source: String) {
        self.mode = mode
        self.path = path
        self.node = node
        self.source = source
    }

    /// A visitor that reads `tree` (a mapping).
    public init(decoding tree: ConfigNode) {
        self.init(mode: .decode, path: tree.path, node: tree, source: tree.source)
    }

    /// A visitor that records values (`.dump`) or help rows (`.help`).
    public init(mode: Mode) {
        self.init(mode: mode, path: "", node: nil, source: "")
    }

    /// Visits one field. Absent keys leave `value` untouched (its default).
    public mutating func field<T: ConfigValue>(_ key: String, _ value: inout T, doc: String = "") throws {
        assert(!known.contains(key), "config key '\(key)' visited twice")
        known.append(key)
        switch mode {
        case .decode:
            guard let n = child(key) else { return }
            do {
                value = try T(config: n)
            } catch let issue as ConfigIssue {
                issues.append(issue)
            }
        case .dump:
            dumped.append(ConfigEntry(key: key, node: ConfigNode(value.configValue, path: joinPath(path, key))))
        case .help:
            rows.append(ConfigHelpRow(path: joinPath(path, key), type: T.typeName,
                                      defaultValue: ConfigNode(value.configValue).yaml().dropLastNewline(), doc: doc))
        }
    }

    /// A field left out of dumps while it equals `omitted` (decoded and listed in help as any
    /// other): for a key added after runs were made, whose config dumps (and the stage hashes
    /// made of them) must stay as they were while it is off.
    public mutating func field<T: ConfigValue & Equatable>(_ key: String, _ value: inout T, omittedAt omitted: T,
                                                           doc: String = "") throws {
        if mode == .dump && value == omitted {
            known.append(key)
            return
        }
        try field(key, &value, doc: doc)
    }

    /// Visits a nested section under `key`. An absent or empty (`key:`) section keeps defaults.
    public mutating func section<S: ConfigSection>(_ key: String, _ value: inout S, doc: String = "") throws {
        assert(!known.contains(key), "config key '\(key)' visited twice")
        known.append(key)
        let childPath = joinPath(path, key)
        var sub = ConfigVisitor(mode: mode, path: childPath, node: nil, source: source)
        if mode == .decode, let n = child(key), !n.isNull {
            guard n.entries != nil else {
                issues.append(ConfigIssue(source: n.source, line: n.line,
                                          message: "\(childPath): expected a section (a mapping of keys), found \(n.found)"))
                return
            }
            sub = ConfigVisitor(mode: .decode, path: childPath, node: n, source: n.source)
        }
        if mode == .help { rows.append(ConfigHelpRow(path: childPath, type: "section", defaultValue: "", doc: doc)) }
        try value.visit(&sub)
        sub.reportUnknownKeys()
        issues += sub.issues
        rows += sub.rows
        if mode == .dump {
            dumped.append(ConfigEntry(key: key, node: ConfigNode(.mapping(sub.dumped), path: childPath)))
        }
    }

    /// A validation rule, checked after decoding (`v.check(lr > 0, "lr", "must be positive")`).
    /// The message is reported as `source:line: section.key: message`.
    public mutating func check(_ ok: Bool, _ key: String, _ message: @autoclosure () -> String) {
        guard mode == .decode, !ok else { return }
        let n = child(key)
        issues.append(ConfigIssue(source: n?.source ?? source, line: n?.line,
                                  message: "\(joinPath(path, key)): \(message())"))
    }

    private func child(_ key: String) -> ConfigNode? {
        node?.entries?.first(where: { $0.key == key })?.node
    }

    /// Keys in this section's YAML that no `field`/`section` call asked for.
    mutating func reportUnknownKeys() {
        guard mode == .decode, let entries = node?.entries else { return }
        for e in entries where !known.contains(e.key) {
            issues.append(ConfigIssue(source: e.node.source, line: e.keyLine ?? e.node.line,
                                      message: "unknown key '\(joinPath(path, e.key))'" + suggestion(for: e.key)))
        }
    }

    private func suggestion(for key: String) -> String {
        guard !known.isEmpty else { return " (this section has no keys)" }
        let scored = known.map { ($0, editDistance($0, key)) }
        let best = scored.min { $0.1 < $1.1 }!
        // A suggestion far from what was typed misleads more than it helps: list the keys instead.
        if best.1 <= max(2, key.count / 3) { return " (did you mean '\(joinPath(path, best.0))'?)" }
        // Abbreviated keys: `learning_rate` (or `lerning_rate`) for `lr`.
        let initials = String(key.split(separator: "_").compactMap(\.first)).lowercased()
        if initials.count > 1, let k = known.first(where: { $0 == initials }) {
            return " (did you mean '\(joinPath(path, k))'?)"
        }
        return " (valid keys: \(known.joined(separator: ", ")))"
    }
}

/// Optimal-string-alignment distance: insertions, deletions, substitutions and adjacent
/// transpositions cost 1 ("trian" is one step from "train").
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a.lowercased()), b = Array(b.lowercased())
    if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
    var d = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
    for i in 0...a.count { d[i][0] = i }
    for j in 0...b.count { d[0][j] = j }
    for i in 1...a.count {
        for j in 1...b.count {
            let cost = a[i - 1] == b[j - 1] ? 0 : 1
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
            if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1)
            }
        }
    }
    return d[a.count][b.count]
}

extension String {
    fileprivate func dropLastNewline() -> String {
        hasSuffix("\n") ? String(dropLast()) : self
    }
}

// MARK: - Entry points

/// Reads a YAML config file strictly and applies `--set key.path=value` overrides (in order).
/// Throws `ConfigError` listing every problem: unknown keys (with the nearest valid key),
/// wrong types, invalid enum values, failed checks, each as `file:line: key.path: message`.
public func loadConfig<C: ConfigSection>(_ type: C.Type, path: String, overrides: [String] = []) throws -> C {
    let text: String
    do {
        text = try String(contentsOfFile: path, encoding: .utf8)
    } catch {
        throw ConfigError([ConfigIssue(source: path, line: nil, message: "cannot read the config file (\(error.localizedDescription))")])
    }
    // An empty file would otherwise decode to the defaults and start a run nobody asked for
    // (an emptied or zero-length file after a failed copy).
    let tree = try ConfigNode.parse(yaml: text, source: path)
    if case .mapping(let entries) = tree.value, entries.isEmpty {
        throw ConfigError([ConfigIssue(source: path, line: nil, message: "the config file has no settings (empty, or only comments); a config names at least its dataset")])
    }
    return try loadConfig(type, yaml: text, source: path, overrides: overrides)
}

/// As `loadConfig(_:path:overrides:)`, from YAML text; `source` names it in errors.
public func loadConfig<C: ConfigSection>(_ type: C.Type, yaml: String, source: String = "<config>",
                                         overrides: [String] = []) throws -> C {
    var tree = try ConfigNode.parse(yaml: yaml, source: source)
    for o in overrides { try tree.applyOverride(o) }
    return try decodeConfig(type, from: tree)
}

/// Decodes a parsed tree (see `ConfigNode.parse`, `ConfigNode.applyOverride`).
public func decodeConfig<C: ConfigSection>(_ type: C.Type, from tree: ConfigNode) throws -> C {
    var config = C()
    var v = ConfigVisitor(decoding: tree)
    try config.visit(&v)
    v.reportUnknownKeys()
    guard v.issues.isEmpty else {
        // File problems in line order, then those from --set in the order met.
        let ordered = v.issues.enumerated().sorted { x, y in
            let kx = (x.element.line == nil ? 1 : 0, x.element.line ?? 0, x.offset)
            let ky = (y.element.line == nil ? 1 : 0, y.element.line ?? 0, y.offset)
            return kx < ky
        }
        throw ConfigError(ordered.map(\.element))
    }
    return config
}

/// The fully resolved config (defaults included) as a tree.
public func configTree<C: ConfigSection>(_ c: C) -> ConfigNode {
    var copy = c
    var v = ConfigVisitor(mode: .dump)
    do {
        try copy.visit(&v)
    } catch {
        // Fields never throw while dumping; only a section's own code could. Keep what was seen.
    }
    return ConfigNode(.mapping(v.dumped))
}

/// The fully resolved config as YAML, e.g. for a run folder's `config.yaml`.
/// `loadConfig(C.self, yaml: dumpConfig(c))` gives back `c`.
public func dumpConfig<C: ConfigSection>(_ c: C) -> String {
    configTree(c).yaml()
}

/// Every key path of a config with its type, default and doc.
public func configHelpRows<C: ConfigSection>(_ type: C.Type) -> [ConfigHelpRow] {
    var c = C()
    var v = ConfigVisitor(mode: .help)
    do { try c.visit(&v) } catch {}
    return v.rows
}

/// `configHelpRows` as an aligned table: `key.path  type  = default  doc`.
public func configHelp<C: ConfigSection>(_ type: C.Type) -> String {
    let rows = configHelpRows(type)
    let fields = rows.filter { $0.type != "section" }
    let wPath = fields.map(\.path.count).max() ?? 0
    let wType = min(28, fields.map(\.type.count).max() ?? 0)
    let wDefault = min(12, fields.map(\.defaultValue.count).max() ?? 0)
    var out = ""
    for r in rows {
        if r.type == "section" {
            out += "\n\(r.path):" + (r.doc.isEmpty ? "" : "  \(r.doc)") + "\n"
            continue
        }
        var line = "  " + r.path.padding(toLength: wPath, withPad: " ", startingAt: 0)
        line += "  " + (r.type.count > wType ? r.type : r.type.padding(toLength: wType, withPad: " ", startingAt: 0))
        line += "  = " + (r.defaultValue.count > wDefault ? r.defaultValue
                          : r.defaultValue.padding(toLength: wDefault, withPad: " ", startingAt: 0))
        if !r.doc.isEmpty { line += "  " + r.doc }
        out += line + "\n"
    }
    return out
}
