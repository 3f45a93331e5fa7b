import Foundation
import Reporting

/// The small Markdown subset the toolkit's tables use, as HTML: pipe tables (a `|---|` rule
/// line after the header; `---:` right-aligns the column), `#` headings, and paragraphs; inline
/// `code` and **bold**. Anything else is shown as escaped text, never as markup.
public func markdownToHTML(_ md: String) -> String {
    var out: [String] = []
    var paragraph: [String] = []
    var table: [String] = []
    func inline(_ s: String) -> String {
        var t = htmlEscaped(s)
        for (mark, tag) in [("`", "code"), ("**", "strong")] {
            let parts = t.components(separatedBy: mark)
            guard parts.count >= 3, parts.count % 2 == 1 else { continue }
            t = parts.enumerated().map { $0.offset % 2 == 1 ? "<\(tag)>\($0.element)</\(tag)>" : $0.element }.joined()
        }
        return t
    }
    func cells(_ line: String) -> [String] {
        var s = line.trimmingCharacters(in: .whitespaces)
        if s.hasPrefix("|") { s.removeFirst() }
        if s.hasSuffix("|") { s.removeLast() }
        return s.components(separatedBy: "|").map { $0.trimmingCharacters(in: .whitespaces) }
    }
    func flushParagraph() {
        if !paragraph.isEmpty { out.append("<p>" + inline(paragraph.joined(separator: " ")) + "</p>") }
        paragraph = []
    }
    func flushTable() {
        defer { table = [] }
        guard table.count >= 2 else { paragraph += table; return }
        let rule = cells(table[1])
        let right = rule.map { $0.hasSuffix(":") }
        func row(_ line: String, _ tag: String) -> String {
            "<tr>" + cells(line).enumerated().map { i, c in
                let align = i < right.count && right[i] ? " class=\"num\"" : ""
                return "<\(tag)\(align)>\(inline(c))</\(tag)>"
            }.joined() + "</tr>"
        }
        out.append("<table>\n<thead>" + row(table[0], "th") + "</thead>\n<tbody>\n"
                   + table.dropFirst(2).map { row($0, "td") }.joined(separator: "\n") + "\n</tbody>\n</table>")
    }
    for line in md.components(separatedBy: "\n") {
        let t = line.trimmingCharacters(in: .whitespaces)
        if t.hasPrefix("|") { flushParagraph(); table.append(t); continue }
        if !table.isEmpty { flushTable() }
        if t.isEmpty { flushParagraph(); continue }
        if let level = t.firstIndex(where: { $0 != "#" }).map({ t.distance(from: t.startIndex, to: $0) }), level > 0, level <= 6,
           t.dropFirst(level).hasPrefix(" ") {
            flushParagraph()
            out.append("<h\(level + 1)>\(inline(String(t.dropFirst(level + 1))))</h\(level + 1)>")
            continue
        }
        paragraph.append(t)
    }
    flushParagraph()
    if !table.isEmpty { flushTable() }
    return out.joined(separator: "\n")
}

let pageStyle = """
body { font-family: sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; vertical-align: middle; }
th { background: #f3f3f3; } td.num, th.num { text-align: right; }
img.px { image-rendering: pixelated; } figure { display: inline-block; margin: 0.5em; vertical-align: top; }
img.plot { width: 560px; max-width: 100%; } figure img.px { min-width: 360px; }
figcaption { font-size: 0.85em; color: #555; } pre { background: #f6f6f6; padding: 1em; overflow-x: auto; }
"""
