import XCTest
import Experiments
import Models
import Reporting
import Foundation

/// reflow-gen-pairs on the dataset's captions with a teacher that lacks some of their words:
/// a note (the teacher's own vocabulary: the same <unk>s it was trained on), a warning (another
/// vocabulary, a few captions), or an error (another vocabulary, most captions).
final class CaptionWordsTests: XCTestCase {
    private var dir = ""
    private var lines: [String] = []

    override func setUp() {
        dir = tempDir("caption-words")
        lines = []
        Log.sink = { [unowned self] in self.lines.append($0) }
    }

    override func tearDown() {
        Log.sink = { FileHandle.standardError.write(Data($0.utf8)) }
        Log.level = .info
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// A random teacher whose vocabulary is built from `captions` (toy2d item shape).
    private func teacher(_ p: Pipeline, captions: [String]) throws -> String {
        let tok = Tokenizer(captions: captions, maxTokens: p.config.text.maxTokens)
        let path = dir + "/teacher-\(captions.count).safetensors"
        try FlowModel(spec: p.modelSpec(tokenizer: tok, itemShape: [2, 1, 1]), tokenizer: tok, seed: 1)
            .save(to: URL(fileURLWithPath: path), stage: "teacher", step: 0)
        return path
    }

    func testAFewCaptionsWithWordsOfAnotherVocabularyAreAWarning() throws {
        let p = try Pipeline(config: chainToyConfig(output: dir))
        let captions = try p.loadDataset(.train).captions
        let path = try teacher(p, captions: ["right cluster", "upper left cluster", "lower left cluster", "top cluster"])
        _ = try p.pairsRequest(teacher: path, output: dir + "/pairs.h5")
        let n = captions.filter { $0 == "bottom cluster" }.count
        XCTAssertGreaterThan(n, 0)
        XCTAssertEqual(lines.filter { $0.hasPrefix("warning:") }, [
            "warning: pairs: \(n) of \(captions.count) training captions of toy2d hold 1 word outside the vocabulary of \(path): 'bottom' (\(n)); they become <unk> (the teacher was trained on other captions)\n",
        ])
    }

    func testMostCaptionsWithUnknownWordsAreRefused() throws {
        let p = try Pipeline(config: chainToyConfig(output: dir))
        let captions = try p.loadDataset(.train).captions
        let path = try teacher(p, captions: ["right cluster"])
        let affected = captions.filter { $0 != "right cluster" }.count
        XCTAssertThrowsError(try p.pairsRequest(teacher: path, output: dir + "/pairs.h5")) { e in
            let text = "\(e)"
            XCTAssertTrue(text.hasPrefix("pairs: \(affected) of \(captions.count) training captions of toy2d hold 5 words outside the vocabulary of \(path): '"), text)
            XCTAssertTrue(text.hasSuffix("; the teacher was trained on other captions: use the teacher of this dataset, or pass --prompts with words it knows"), text)
        }
    }

    func testRareWordsOfTheTeachersOwnVocabularyAreANote() throws {
        // toy2d's eight components are near equally frequent: "top" and "bottom" each caption about
        // 1/8 of the points; every other word captions at least 2/8 of them.
        let p = try Pipeline(config: chainToyConfig(output: dir, extra: ["text.vocab_min_count=1500"]))
        let train = try p.loadDataset(.train)
        let path = dir + "/teacher.safetensors"
        try randomTeacher(p, path: path)
        _ = try p.pairsRequest(teacher: path, output: dir + "/pairs.h5")
        let top = train.captions.filter { $0 == "top cluster" }.count, bottom = train.captions.filter { $0 == "bottom cluster" }.count
        let words = top > bottom ? "'top' (\(top)), 'bottom' (\(bottom))" : "'bottom' (\(bottom)), 'top' (\(top))"
        XCTAssertEqual(lines.filter { $0.hasPrefix("note: pairs:") }, [
            "note: pairs: \(top + bottom) of \(train.count) training captions of toy2d hold 2 words outside the vocabulary of \(path): \(words); they become <unk>, as in the teacher's training (text.vocab_min_count = 1500)\n",
        ])
        XCTAssertTrue(lines.filter { $0.hasPrefix("warning:") }.isEmpty, "\(lines)")
    }
}
