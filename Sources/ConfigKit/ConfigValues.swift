import Foundation

// How each field type reads a node. Numbers and booleans must be plain scalars: `"5"` in quotes
// is a string and is refused for an integer field, as a YAML reader would.

extension ConfigIssue {
    static func mismatch(_ node: ConfigNode, _ expected: String) -> ConfigIssue {
        ConfigIssue(source: node.source, line: node.line,
                    message: "\(node.path): expected \(expected), found \(node.found)")
    }
}

/// The text of a plain, non-null scalar.
private func plainText(_ node: ConfigNode) -> String? {
    guard case .scalar(let s, false) = node.value, !node.isNull else { return nil }
    return s
}

extension Int: ConfigValue {
    public static var expectation: String { "an integer" }
    public static var typeName: String { "int" }
    public init(config node: ConfigNode) throws {
        guard let s = plainText(node) else { throw ConfigIssue.mismatch(node, Self.expectation) }
        let digits = s.replacingOccurrences(of: "_", with: "")
        if let v = Int(digits) {
            self = v
        } else if let d = Double(digits), d.rounded() == d, abs(d) <= 9.007199254740992e15 {
            self = Int(d) // 1e4, 2.5e3: whole numbers written in scientific notation
        } else {
            throw ConfigIssue.mismatch(node, Self.expectation)
        }
    }
    public var configValue: ConfigNode.Value { .scalar(String(self), quoted: false) }
}

/// YAML's `.inf`, `-.inf`, `.nan`, else Swift's own number syntax (which reads "1e-4", "0.5", "3").
/// They are recognised so that the error can say what was written: no setting of this toolkit
/// takes a non-finite number (a NaN guidance or learning rate would poison a whole run silently).
private func parseYAMLFloat(_ s: String) -> Double? {
    switch s {
    case ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF": return .infinity
    case "-.inf", "-.Inf", "-.INF": return -.infinity
    case ".nan", ".NaN", ".NAN": return .nan
    default: return nil
    }
}

private func yamlFloatText<F: BinaryFloatingPoint & LosslessStringConvertible>(_ x: F) -> String {
    if x.isNaN { return ".nan" }
    if x.isInfinite { return x < 0 ? "-.inf" : ".inf" }
    return x.description // shortest text that reads back as the same value
}

extension Double: ConfigValue {
    public static var expectation: String { "a number" }
    public static var typeName: String { "double" }
    public init(config node: ConfigNode) throws {
        guard let s = plainText(node) else { throw ConfigIssue.mismatch(node, Self.expectation) }
        guard let v = parseYAMLFloat(s) ?? Double(s.replacingOccurrences(of: "_", with: "")) else {
            throw ConfigIssue.mismatch(node, Self.expectation)
        }
        guard v.isFinite else { throw ConfigIssue.mismatch(node, "a finite number") }
        self = v
    }
    public var configValue: ConfigNode.Value { .scalar(yamlFloatText(self), quoted: false) }
}

extension Float: ConfigValue {
    public static var expectation: String { "a number" }
    public static var typeName: String { "float" }
    public init(config node: ConfigNode) throws {
        guard let s = plainText(node) else { throw ConfigIssue.mismatch(node, Self.expectation) }
        // Parsed as Float directly: going through Double could round twice.
        guard let v = parseYAMLFloat(s).map(Float.init) ?? Float(s.replacingOccurrences(of: "_", with: "")) else {
            throw ConfigIssue.mismatch(node, Self.expectation)
        }
        guard v.isFinite else { throw ConfigIssue.mismatch(node, "a finite number") }
        self = v
    }
    public var configValue: ConfigNode.Value { .scalar(yamlFloatText(self), quoted: false) }
}

extension Bool: ConfigValue {
    public static var expectation: String { "true or false" }
    public static var typeName: String { "bool" }
    public init(config node: ConfigNode) throws {
        switch plainText(node)?.lowercased() {
        case "true": self = true
        case "false": self = false
        default: throw ConfigIssue.mismatch(node, Self.expectation)
        }
    }
    public var configValue: ConfigNode.Value { .scalar(self ? "true" : "false", quoted: false) }
}

extension String: ConfigValue {
    public static var expectation: String { "a string" }
    public static var typeName: String { "string" }
    public init(config node: ConfigNode) throws {
        guard case .scalar(let s, _) = node.value, !node.isNull else {
            throw ConfigIssue.mismatch(node, Self.expectation)
        }
        self = s
    }
    public var configValue: ConfigNode.Value { .scalar(self, quoted: !isPlainString(self)) }
}

extension Array: ConfigValue where Element: ConfigValue {
    public static var expectation: String { "a list of \(Element.typeName)" }
    public static var typeName: String { "[\(Element.typeName)]" }
    public init(config node: ConfigNode) throws {
        guard case .sequence(let items) = node.value else { throw ConfigIssue.mismatch(node, Self.expectation) }
        self = try items.map { try Element(config: $0) }
    }
    public var configValue: ConfigNode.Value { .sequence(map { ConfigNode($0.configValue) }) }
}

extension Optional: ConfigValue where Wrapped: ConfigValue {
    public static var expectation: String { "\(Wrapped.expectation) or null" }
    public static var typeName: String { "\(Wrapped.typeName)?" }
    public init(config node: ConfigNode) throws {
        if node.isNull {
            self = nil
            return
        }
        do {
            self = try Wrapped(config: node)
        } catch var issue as ConfigIssue where issue.message.hasPrefix("\(node.path): expected \(Wrapped.expectation), ") {
            // Say that null would also do.
            issue.message = "\(node.path): expected \(Self.expectation), found \(node.found)"
            throw issue
        }
    }
    public var configValue: ConfigNode.Value {
        switch self {
        case .some(let v): return v.configValue
        case .none: return .scalar("null", quoted: false)
        }
    }
}

extension ConfigEnum {
    public static var expectation: String { "one of " + allCases.map(\.rawValue).joined(separator: ", ") }
    public static var typeName: String { allCases.map(\.rawValue).joined(separator: "|") }
    public init(config node: ConfigNode) throws {
        guard case .scalar(let s, _) = node.value, !node.isNull, let v = Self(rawValue: s) else {
            throw ConfigIssue.mismatch(node, Self.expectation)
        }
        self = v
    }
    public var configValue: ConfigNode.Value { .scalar(rawValue, quoted: !isPlainString(rawValue)) }
}
