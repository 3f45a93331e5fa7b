import Foundation
import Formats
import TensorCore

extension Dataset {
    /// Rows in `digits.csv.gz` and where the test split starts (the last 297 rows are held out;
    /// see datasets/digits/README.md).
    public static let digitsRowCount = 1797
    public static let digitsTestStart = 1500

    static let digitWords = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]

    /// The five caption templates of digit `d`, in template order.
    static func digitCaptions(_ d: Int) -> [String] {
        let w = digitWords[d]
        return ["a handwritten digit \(w)", "the number \(d)", "digit \(d)", "a handwritten \(d)", "the digit \(w)"]
    }

    /// Where `digits.csv.gz` is looked for, in order: `$REFLOW_DATASETS/digits/`, `./datasets/digits/`,
    /// then this source tree's `datasets/digits/` (found from this file's compile-time path).
    public static func digitsSearchPaths() -> [String] {
        var paths = [String]()
        if let env = ProcessInfo.processInfo.environment["REFLOW_DATASETS"], !env.isEmpty {
            paths.append(env + "/digits/digits.csv.gz")
        }
        paths.append(FileManager.default.currentDirectoryPath + "/datasets/digits/digits.csv.gz")
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        paths.append(repo.appendingPathComponent("datasets/digits/digits.csv.gz").path)
        return paths
    }

    /// The first existing path of `digitsSearchPaths()`.
    public static func locateDigits() throws -> String {
        let paths = digitsSearchPaths()
        if let p = paths.first(where: { FileManager.default.fileExists(atPath: $0) }) { return p }
        throw DataError("digits.csv.gz not found; looked in: \(paths.joined(separator: ", ")) "
            + "(set REFLOW_DATASETS or run scripts/fetch_digits.sh)")
    }

    /// scikit-learn's 8x8 digits (UCI Optical Recognition of Handwritten Digits), [N, 1, 8, 8],
    /// pixels 0..16 scaled to v / 8 - 1. Train = rows 0..<1500, test = rows 1500..<1797.
    /// Captions: one of five templates per class, chosen by a fixed hash of the row.
    public static func digits(split: Split, path: String? = nil) throws -> Dataset {
        let file = try path ?? locateDigits()
        let bytes = try FileBytes.read(file, expectedSize: 270_000)
        var pixels = [Float]()
        pixels.reserveCapacity(digitsRowCount * 64)
        var labels = [Int]()
        labels.reserveCapacity(digitsRowCount)

        // A tiny CSV scanner: the file is integers, commas and newlines only.
        var row = [Int]()
        row.reserveCapacity(65)
        var value = 0, inNumber = false, line = 1
        func endRow() throws {
            if row.isEmpty { return }
            guard row.count == 65 else {
                throw DataError("\(file): line \(line) has \(row.count) fields, expected 65 (64 pixels and a label)")
            }
            guard row[0..<64].allSatisfy({ (0...16).contains($0) }), (0...9).contains(row[64]) else {
                throw DataError("\(file): line \(line) has a pixel outside 0...16 or a label outside 0...9")
            }
            for v in row[0..<64] { pixels.append(Float(v) / 8 - 1) }
            labels.append(row[64])
            row.removeAll(keepingCapacity: true)
        }
        for b in bytes {
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                value = value * 10 + Int(b - UInt8(ascii: "0")); inNumber = true
            case UInt8(ascii: "."):
                // "16.0"-style values: skip the fraction (only ".0" occurs in practice).
                continue
            case UInt8(ascii: ","):
                guard inNumber else { throw DataError("\(file): line \(line): empty field") }
                row.append(value); value = 0; inNumber = false
            case UInt8(ascii: "\n"), UInt8(ascii: "\r"):
                if inNumber { row.append(value); value = 0; inNumber = false }
                try endRow()
                if b == UInt8(ascii: "\n") { line += 1 }
            case UInt8(ascii: " "):
                continue
            default:
                throw DataError("\(file): line \(line): unexpected character '\(Character(Unicode.Scalar(b)))'")
            }
        }
        if inNumber { row.append(value) }
        try endRow()
        guard labels.count == digitsRowCount else {
            throw DataError("\(file): \(labels.count) rows, expected \(digitsRowCount) (see datasets/digits/README.md)")
        }

        let range: Range<Int>
        switch split {
        case .train: range = 0..<digitsTestStart
        case .test: range = digitsTestStart..<digitsRowCount
        case .all: range = 0..<digitsRowCount
        }
        let images = Storage(uninitializedCount: range.count * 64)
        pixels.withUnsafeBufferPointer { images.ptr.update(from: $0.baseAddress! + range.lowerBound * 64, count: range.count * 64) }
        let itemLabels = Array(labels[range])
        let captions = range.map { r in digitCaptions(labels[r])[StableHash.pick(r, salt: 0xD161, among: 5)] }
        return try Dataset(name: DatasetName.digits.rawValue, split: split, images: images, shape: [range.count, 1, 8, 8],
                           labels: itemLabels, captions: captions, classNames: digitWords,
                           classCaptions: (0..<10).map { digitCaptions($0) }, sourceIDs: Array(range))
    }
}
