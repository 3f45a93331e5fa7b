/// Text for HTML and SVG: &, <, > and double quotes escaped.
public func htmlEscaped(_ s: String) -> String {
    s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
        .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
}

/// A file-name-safe form of a model label: lower case, each run of other characters than
/// letters, digits and dots one "-" ("2-RF + distill" -> "2-rf-distill"; never a "/").
public func fileSlug(_ s: String) -> String {
    var out = ""
    for ch in s.lowercased() {
        if ch.isLetter || ch.isNumber || ch == "." { out.append(ch) } else if out.last != "-" { out.append("-") }
    }
    while out.hasSuffix("-") { out.removeLast() }
    return out.isEmpty ? "x" : out
}
