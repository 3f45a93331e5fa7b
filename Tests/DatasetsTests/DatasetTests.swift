import Datasets
import Formats
import Foundation
import TensorCore
import XCTest

final class DatasetTests: XCTestCase {
    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    private func assertRange(_ d: Dataset, file: StaticString = #filePath, line: UInt = #line) {
        let b = d.images.buffer
        XCTAssertEqual(b.count, d.count * d.itemSize, file: file, line: line)
        XCTAssertGreaterThanOrEqual(b.min() ?? 0, -1, file: file, line: line)
        XCTAssertLessThanOrEqual(b.max() ?? 0, 1, file: file, line: line)
        XCTAssertEqual(d.captions.count, d.count, file: file, line: line)
        XCTAssertFalse(d.captions.contains(""), file: file, line: line)
    }

    func testToy2D() throws {
        let d = try Dataset.toy2d(split: .train, count: 4000, seed: 7)
        XCTAssertEqual(d.shape, [4000, 2, 1, 1])
        assertRange(d)
        XCTAssertEqual(d.classNames.count, 8)
        let labels = try XCTUnwrap(d.labels)
        // Every component appears, and its points sit near its centre on the circle.
        for k in 0..<8 {
            let idx = labels.indices.filter { labels[$0] == k }
            XCTAssertGreaterThan(idx.count, 350)
            let a = Float(k) * Float.pi / 4
            let mx = idx.map { d.images.ptr[2 * $0] }.reduce(0, +) / Float(idx.count)
            let my = idx.map { d.images.ptr[2 * $0 + 1] }.reduce(0, +) / Float(idx.count)
            XCTAssertEqual(mx, 0.65 * cos(a), accuracy: 0.02)
            XCTAssertEqual(my, 0.65 * sin(a), accuracy: 0.02)
            XCTAssertTrue(idx.allSatisfy { d.captions[$0] == Dataset.toy2dComponentNames[k] })
        }
        XCTAssertEqual(Dataset.toy2dComponentNames[3], "upper left cluster")
        // Point i depends only on (seed, i): a shorter draw is a prefix; another seed differs.
        let short = try Dataset.toy2d(split: .train, count: 10, seed: 7)
        XCTAssertEqual(short.images.array, Array(d.images.array[0..<20]))
        XCTAssertNotEqual(try Dataset.toy2d(split: .train, count: 10, seed: 8).images.array, short.images.array)
        XCTAssertNotEqual(try Dataset.toy2d(split: .test, count: 10, seed: 7).images.array, short.images.array)
    }

    func testDigits() throws {
        let train = try Dataset.digits(split: .train)
        let test = try Dataset.digits(split: .test)
        let all = try Dataset.load("digits", split: .all)
        XCTAssertEqual(train.shape, [1500, 1, 8, 8])
        XCTAssertEqual(test.shape, [297, 1, 8, 8])
        XCTAssertEqual(all.count, 1797)
        assertRange(all)
        // Row 0 of the CSV: 0,0,5,13,9,1,0,0,... label 0; the last row's label is 8.
        XCTAssertEqual(Array(train.images.array[0..<8]), [-1, -1, -0.375, 0.625, 0.125, -0.875, -1, -1])
        XCTAssertEqual(train.labels?.first, 0)
        XCTAssertEqual(test.labels?.last, 8)
        XCTAssertEqual(test.sourceIDs.first, 1500)
        // Pixels are k/8 - 1 for integers k in 0...16.
        XCTAssertTrue(all.images.buffer.allSatisfy { v in let k = (v + 1) * 8; return k == k.rounded() })
        // Captions come from the item's class templates, all five templates are used.
        let labels = try XCTUnwrap(all.labels)
        for i in 0..<all.count { XCTAssertTrue(all.classCaptions[labels[i]].contains(all.captions[i])) }
        XCTAssertEqual(Set(all.captions).count, 50)
        XCTAssertTrue(all.classCaptions[7].contains("a handwritten digit seven"))
        XCTAssertTrue(all.classCaptions[7].contains("the number 7"))
        // Captions are deterministic.
        XCTAssertEqual(try Dataset.digits(split: .test).captions, test.captions)
        // Batches gather in the order asked.
        let b = try test.batch(indices: [5, 0, 5])
        XCTAssertEqual(b.shape, [3, 1, 8, 8])
        XCTAssertEqual(Array(b.images.array[0..<64]), Array(test.images.array[320..<384]))
        XCTAssertEqual(b.captions, [test.captions[5], test.captions[0], test.captions[5]])
        XCTAssertThrowsError(try test.batch(indices: [297]))
    }

    /// The committed file is the one the README describes (byte count, SHA-256).
    func testDigitsFileMatchesReadme() throws {
        let dir = Self.repoRoot.appendingPathComponent("datasets/digits")
        let bytes = [UInt8](try Foundation.Data(contentsOf: dir.appendingPathComponent("digits.csv.gz")))
        let readme = try String(contentsOf: dir.appendingPathComponent("README.md"), encoding: .utf8)
        XCTAssertEqual(bytes.count, 57_523)
        XCTAssertTrue(readme.contains("57,523 bytes"))
        let digest = SHA256.hex(bytes)
        XCTAssertEqual(digest, "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22")
        XCTAssertTrue(readme.contains(digest), "README does not quote the file's SHA-256 \(digest)")
        XCTAssertEqual(SHA256.hex(Array("abc".utf8)), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    func testFashionMNIST() throws {
        guard FileManager.default.fileExists(atPath: Dataset.defaultFashionDirectory + "/train-images-idx3-ubyte.gz") else {
            throw XCTSkip("dataset-fashion-mnist is not installed")
        }
        let start = Date()
        let train = try Dataset.fashionMNIST(split: .train)
        let elapsed = Date().timeIntervalSince(start)
        XCTAssertLessThan(elapsed, 3, "loading 60k Fashion-MNIST images took \(elapsed) s")
        let test = try Dataset.load("fashion-mnist", split: .test)
        XCTAssertEqual(train.shape, [60_000, 1, 28, 28])
        XCTAssertEqual(test.shape, [10_000, 1, 28, 28])
        assertRange(train)
        XCTAssertEqual(train.images.buffer.min(), -1)
        XCTAssertEqual(train.images.buffer.max(), 1)
        XCTAssertEqual(train.classNames[9], "Ankle boot")
        // The published label order: the first training item is an ankle boot, the first test item too.
        XCTAssertEqual(train.labels?.first, 9)
        XCTAssertEqual(test.labels?.first, 9)
        let labels = try XCTUnwrap(train.labels)
        var counts = [Int](repeating: 0, count: 10)
        for l in labels { counts[l] += 1 }
        XCTAssertEqual(counts, [Int](repeating: 6000, count: 10))
        for i in stride(from: 0, to: 60_000, by: 997) { XCTAssertTrue(train.classCaptions[labels[i]].contains(train.captions[i])) }
        XCTAssertTrue(train.classCaptions[9].contains("a photo of an ankle boot"))
    }

    func testFashionMNISTErrors() throws {
        let dir = NSTemporaryDirectory() + "fashion-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        XCTAssertThrowsError(try Dataset.fashionMNIST(split: .test, directory: dir)) { e in
            XCTAssertTrue("\(e)".contains("apt-get install dataset-fashion-mnist"), "\(e)")
        }
        // A labels file where the images file should be: wrong magic, named.
        let images = dir + "/t10k-images-idx3-ubyte.gz", labels = dir + "/t10k-labels-idx1-ubyte.gz"
        var header: [UInt8] = [0, 0, 8, 1, 0, 0, 0x27, 0x10]
        header += [UInt8](repeating: 0, count: 10_000)
        try Foundation.Data(header).write(to: URL(fileURLWithPath: images))
        try Foundation.Data(header).write(to: URL(fileURLWithPath: labels))
        XCTAssertThrowsError(try Dataset.fashionMNIST(split: .test, directory: dir)) { e in
            XCTAssertTrue("\(e)".contains(images) && "\(e)".contains("magic"), "\(e)")
        }
        // Right magic, too few bytes.
        var short: [UInt8] = [0, 0, 8, 3, 0, 0, 0x27, 0x10, 0, 0, 0, 28, 0, 0, 0, 28]
        short += [UInt8](repeating: 0, count: 100)
        try Foundation.Data(short).write(to: URL(fileURLWithPath: images))
        XCTAssertThrowsError(try Dataset.fashionMNIST(split: .test, directory: dir)) { e in
            XCTAssertTrue("\(e)".contains(images) && "\(e)".contains("truncated"), "\(e)")
        }
    }

    func testGlyphs() throws {
        guard FileManager.default.fileExists(atPath: Dataset.defaultUnifontPath) else {
            throw XCTSkip("unifont is not installed")
        }
        let train = try Dataset.glyphs(split: .train)
        let test = try Dataset.glyphs(split: .test)
        XCTAssertEqual(train.itemShape, [1, 16, 16])
        assertRange(train)
        let total = train.count + test.count
        XCTAssertGreaterThan(total, 20_000)
        XCTAssertLessThan(total, 35_000)
        XCTAssertEqual(Double(test.count) / Double(total), 0.05, accuracy: 0.01)
        XCTAssertNil(train.labels)
        XCTAssertTrue(Set(train.captions).isDisjoint(with: test.captions))
        // No code-point names, no nameless glyphs; Hangul syllables stay.
        let all = train.captions + test.captions
        XCTAssertFalse(all.contains { $0.hasPrefix("cjk unified ideograph") })
        XCTAssertGreaterThan(all.filter { $0.hasPrefix("hangul syllable ") }.count, 10_000)
        XCTAssertNil(Dataset.glyphCaption(codePoint: 0x4E00))
        XCTAssertNil(Dataset.glyphCaption(codePoint: 0x0007))
        XCTAssertEqual(Dataset.glyphCaption(codePoint: 0xAC01), "hangul syllable gag")
        XCTAssertEqual(Dataset.glyphCaption(codePoint: 0xE9), "latin small letter e with acute")

        // 'A' is an 8x16 glyph, centred: nothing in the 4 outer columns, ink inside.
        let split = Dataset.glyphIsTest(caption: "latin capital letter a") ? test : train
        let i = try XCTUnwrap(split.sourceIDs.firstIndex(of: 0x41))
        XCTAssertEqual(split.captions[i], "latin capital letter a")
        let img = Array(split.images.array[i * 256..<(i + 1) * 256])
        for r in 0..<16 { for c in [0, 1, 2, 3, 12, 13, 14, 15] { XCTAssertEqual(img[r * 16 + c], -1) } }
        XCTAssertGreaterThan(img.filter { $0 == 1 }.count, 15)
        // unifont.hex: 0041:0000000018242442427E424242420000 -> row 4 is 0x18 = ...##... (columns 7, 8).
        XCTAssertEqual((0..<16).filter { img[4 * 16 + $0] == 1 }, [7, 8])
    }

    func testLoadByNameErrors() throws {
        XCTAssertThrowsError(try Dataset.load("mnist", split: .train)) { e in
            XCTAssertTrue("\(e)".contains("unknown dataset 'mnist'") && "\(e)".contains("fashion-mnist"), "\(e)")
        }
        XCTAssertThrowsError(try Dataset.glyphs(split: .train, path: "/nonexistent/unifont.hex")) { e in
            XCTAssertTrue("\(e)".contains("apt-get install unifont"), "\(e)")
        }
        XCTAssertThrowsError(try Dataset.digits(split: .train, path: "/nonexistent/digits.csv.gz")) { e in
            XCTAssertTrue("\(e)".contains("/nonexistent/digits.csv.gz"), "\(e)")
        }
        let toy = try Dataset.load("toy2d", split: .test, options: DatasetOptions(toyCount: 100, toySeed: 3))
        XCTAssertEqual(toy.shape, [100, 2, 1, 1])
        XCTAssertEqual(try toy.prefix(10).count, 10)
    }
}
