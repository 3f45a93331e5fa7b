import Foundation
import Formats
import TensorCore

extension Dataset {
    /// Where Debian's `unifont` package puts the hex font.
    public static let defaultUnifontPath = "/usr/share/unifont/unifont.hex"

    /// Percentage of glyph captions held out as the test split.
    public static let glyphTestPercent: UInt64 = 5

    /// The caption of code point `cp`: its Unicode name, lower-cased ("latin small letter e with
    /// acute"), or nil when the glyph carries no words: no name (controls, private use,
    /// unassigned) or a name that is just the code point ("CJK UNIFIED IDEOGRAPH-4E00",
    /// "TANGUT IDEOGRAPH-17000"). Hangul syllables keep their names ("hangul syllable gag"),
    /// which spell the syllable's parts.
    public static func glyphCaption(codePoint cp: Int) -> String? {
        guard let scalar = Unicode.Scalar(UInt32(truncatingIfNeeded: cp)), cp >= 0,
              let name = scalar.properties.name, !name.isEmpty else { return nil }
        if name.hasSuffix("-" + String(cp, radix: 16, uppercase: true)) { return nil }
        return name.lowercased()
    }

    /// Whether a glyph caption belongs to the test split: a fixed hash (FNV-1a 64) of the caption
    /// puts about 5% of captions there, independent of the font version and of the other glyphs.
    public static func glyphIsTest(caption: String) -> Bool {
        StableHash.fnv1a(caption) % 100 < glyphTestPercent
    }

    /// 16x16 glyphs from GNU Unifont's hex file, [N, 1, 16, 16], ink = +1 and paper = -1; 8x16
    /// glyphs are centred with 4 blank columns on each side. Only glyphs with a word caption (see
    /// `glyphCaption(codePoint:)`) are kept, in code-point order. No labels: the caption is the
    /// class. `sourceIDs` are the code points.
    public static func glyphs(split: Split, path: String = defaultUnifontPath) throws -> Dataset {
        guard FileManager.default.fileExists(atPath: path) else {
            throw DataError("glyphs: \(path) not found. Install GNU Unifont with `sudo apt-get install unifont` "
                + "(Debian/Ubuntu), or pass the path of a unifont .hex file")
        }
        let bytes = try FileBytes.read(path, expectedSize: 3_000_000)

        func hexValue(_ b: UInt8) -> Int? {
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return Int(b - UInt8(ascii: "0"))
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return Int(b - UInt8(ascii: "A")) + 10
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return Int(b - UInt8(ascii: "a")) + 10
            default: return nil
            }
        }

        // Pass 1: split lines into (code point, bitmap byte range), validating as we go.
        var entries = [(cp: Int, start: Int, digits: Int)]()
        entries.reserveCapacity(60_000)
        var lineStart = 0, lineNumber = 1
        while lineStart < bytes.count {
            var end = lineStart
            while end < bytes.count && bytes[end] != UInt8(ascii: "\n") { end += 1 }
            var stop = end
            if stop > lineStart && bytes[stop - 1] == UInt8(ascii: "\r") { stop -= 1 }
            if stop > lineStart {
                var i = lineStart, cp = 0
                while i < stop, let h = hexValue(bytes[i]) { cp = cp * 16 + h; i += 1 }
                guard i > lineStart, i < stop, bytes[i] == UInt8(ascii: ":"), cp <= 0x10FFFF else {
                    throw DataError("\(path): line \(lineNumber) is not 'CODEPOINT:HEXBITMAP'")
                }
                let digits = stop - i - 1
                guard digits == 32 || digits == 64 else {
                    throw DataError("\(path): line \(lineNumber) (U+\(String(cp, radix: 16, uppercase: true))) has "
                        + "\(digits) hex digits, expected 32 (8x16) or 64 (16x16)")
                }
                entries.append((cp, i + 1, digits))
            }
            lineStart = end + 1
            lineNumber += 1
        }

        // Pass 2: captions and the split; keep only this split's glyphs.
        var kept = [(cp: Int, start: Int, digits: Int, caption: String)]()
        kept.reserveCapacity(entries.count)
        for e in entries {
            guard let caption = glyphCaption(codePoint: e.cp) else { continue }
            let isTest = glyphIsTest(caption: caption)
            if split == .all || (split == .test) == isTest { kept.append((e.cp, e.start, e.digits, caption)) }
        }

        // Pass 3: bitmaps. Each hex row is 2 (8 px) or 4 (16 px) digits, most significant bit left.
        let n = kept.count
        let images = Storage(uninitializedCount: n * 256)
        var bad: Int? = nil
        bytes.withUnsafeBufferPointer { src in
            for (k, e) in kept.enumerated() {
                let out = images.ptr + k * 256
                let perRow = e.digits / 16
                let shift = perRow == 2 ? 4 : 0
                for r in 0..<16 {
                    var bits = 0
                    for d in 0..<perRow {
                        guard let h = hexValue(src[e.start + r * perRow + d]) else { bad = e.cp; return }
                        bits = bits << 4 | h
                    }
                    // An 8-wide row lands in bits 11...4: 4 blank columns on each side.
                    bits <<= shift
                    for c in 0..<16 {
                        out[r * 16 + c] = (bits >> (15 - c)) & 1 == 1 ? 1 : -1  // bit 15 = leftmost pixel
                    }
                }
            }
        }
        if let cp = bad {
            throw DataError("\(path): glyph U+\(String(cp, radix: 16, uppercase: true)) has a non-hex bitmap digit")
        }
        return try Dataset(name: DatasetName.glyphs.rawValue, split: split, images: images, shape: [n, 1, 16, 16],
                           labels: nil, captions: kept.map(\.caption), classNames: [], classCaptions: [],
                           sourceIDs: kept.map(\.cp))
    }
}
