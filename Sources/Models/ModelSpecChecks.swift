import Foundation

// The checks of a `ModelSpec`, run before a network is built from it (FlowModel.init). A spec
// may come from a damaged or crafted checkpoint: every field is range-checked, every division
// and GroupNorm/attention split is checked for divisibility (release builds use -Ounchecked,
// where a division by zero or a failed precondition is undefined behaviour, not a trap), and
// the parameter count is bounded with checked arithmetic before any allocation.

extension ModelSpec {
    /// The largest model a checkpoint may describe: 2^28 parameters (1 GiB of Float32), far
    /// above anything trained at CPU scale (the fashion U-Net has ~2.5M).
    public static let maxParameters = 1 << 28

    /// Problems that would make the network fail later (or allocate absurdly), named by field.
    public func validate() throws {
        var p: [String] = []
        func range(_ name: String, _ v: Int, _ r: ClosedRange<Int>) {
            if !r.contains(v) { p.append("\(name) \(v) outside \(r.lowerBound)...\(r.upperBound)") }
        }
        range("channels", channels, 1...64)
        range("height", height, 1...4096)
        range("width", width, 1...4096)
        range("timeEmbedding", timeEmbedding, 2...8192)
        if timeEmbedding % 2 != 0 { p.append("timeEmbedding \(timeEmbedding) must be even") }
        range("vocabularySize", vocabularySize, 3...1_000_000)
        range("maxTokens", maxTokens, 1...4096)
        range("textWidth", textWidth, 1...8192)
        range("textLayers", textLayers, 0...64)
        range("textHeads", textHeads, 1...1024)
        if textHeads >= 1 && textWidth % textHeads != 0 { p.append("textWidth \(textWidth) is not divisible by textHeads \(textHeads)") }
        if !(dropout >= 0 && dropout < 1) { p.append("dropout \(dropout) outside [0, 1)") }
        // Every field is checked whatever the kind: a crafted value is refused even where this
        // kind does not use it (a file must not load with a spec it could not have been made with).
        range("hidden", hidden, 1...65536)
        range("depth", depth, 0...256)
        range("number of levels", levels.count, 1...8)
        for c in levels { range("levels entry", c, 1...8192) }
        range("blocksPerLevel", blocksPerLevel, 1...64)
        range("groups", groups, 1...1024)
        for l in attentionLevels where l < 0 || l >= levels.count { p.append("attention level \(l) out of range 0..<\(levels.count)") }
        if kind == .unet {
            if groups >= 1 {
                for c in levels where c % groups != 0 { p.append("levels entry \(c) not divisible by groups \(groups)") }
            }
            // Cross-attention uses max(1, channels / 32) heads, which must divide the channels.
            for c in levels where c >= 1 && c % max(1, c / 32) != 0 {
                p.append("levels entry \(c) not divisible by its \(c / 32) attention heads (channels / 32)")
            }
            if (1...8).contains(levels.count) {
                let down = 1 << (levels.count - 1)
                if height % down != 0 || width % down != 0 {
                    p.append("image \(height)x\(width) not divisible by 2^\(levels.count - 1) for \(levels.count) levels")
                }
            }
        }
        if p.isEmpty, parameterBound() == nil {
            p.append("the model would have more than \(ModelSpec.maxParameters) parameters (size cap)")
        }
        if !p.isEmpty { throw ModelError("invalid model: " + p.joined(separator: "; ")) }
    }

    /// An upper bound of the parameter count, or nil when it exceeds `maxParameters` (computed
    /// with checked arithmetic; call it only on a spec whose fields are in range).
    func parameterBound() -> Int? {
        var total = 0
        var ok = true
        func add(_ factors: Int...) {
            var prod = 1
            for f in factors {
                let r = prod.multipliedReportingOverflow(by: f)
                if r.overflow { ok = false; return }
                prod = r.partialValue
            }
            let s = total.addingReportingOverflow(prod)
            if s.overflow { ok = false } else { total = s.partialValue }
        }
        // Text encoder: embeddings, positions, per layer attention (4 w^2) + MLP (8 w^2) + norms.
        add(vocabularySize + maxTokens, textWidth)
        add(textLayers, 12 * textWidth + 16, textWidth)
        let item = channels * height * width
        switch kind {
        case .mlp:
            add(2 * item + 2, hidden)                                          // input, output
            add(timeEmbedding + 2 * hidden + textWidth + 4, hidden)            // conditioning
            add(2 * depth, hidden + 1, hidden)                                 // blocks
        case .unet:
            let widest = levels.max() ?? 1, e = 4 * (levels.first ?? 1)
            add(timeEmbedding + e + textWidth + 4, e)                          // conditioning
            // Every conv block at most 2*widest -> widest (3x3, twice), its FiLM and skip, and
            // cross-attention (q, k, v, out with text-width context); count generously.
            let blocks = 2 * levels.count * (blocksPerLevel + 1) + 4
            add(blocks, 27 * widest + 2 * e + 4 * widest + 2 * textWidth + 16, widest)
            add(9 * channels + 4, widest)                                      // stem, out conv
        }
        return ok && total <= ModelSpec.maxParameters ? total : nil
    }
}
