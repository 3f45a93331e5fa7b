import XCTest
import TestSupport
import Models

final class TokenizerTests: XCTestCase {
    func testVocabularyIsDeterministicAndEncodes() throws {
        let caps = ["the number 7", "a handwritten digit seven", "the number 3"]
        let t1 = Tokenizer(captions: caps, maxTokens: 6)
        let t2 = Tokenizer(captions: caps.reversed(), maxTokens: 6)
        XCTAssertEqual(t1, t2)
        XCTAssertEqual(Array(t1.words.prefix(5)), ["<pad>", "<unk>", "<start>", "number", "the"])
        let (ids, n) = t1.encode("The number 7!")
        XCTAssertEqual(n, 4)
        XCTAssertEqual(ids.count, 6)
        XCTAssertEqual(ids[0], Tokenizer.start)
        XCTAssertEqual(Array(ids[4...]), [0, 0])
    }

    func testUnknownWordsAndEmptyPrompt() {
        let t = Tokenizer(captions: ["the number 7"], maxTokens: 4)
        let (ids, n) = t.encode("the zebra")
        XCTAssertEqual(n, 3)
        XCTAssertEqual(ids[2], Tokenizer.unknown)
        XCTAssertEqual(t.unknownWords(in: "the zebra"), ["zebra"])
        let (e, ne) = t.encode("")
        XCTAssertEqual(ne, 1)
        XCTAssertEqual(e, [Tokenizer.start, 0, 0, 0])
        // Long captions are cut, never overflow.
        XCTAssertEqual(t.encode("the the the the the the").length, 4)
    }

    func testSerializationRoundTripAndErrors() throws {
        let t = Tokenizer(captions: ["latin capital letter a", "latin small letter b"], maxTokens: 8)
        XCTAssertEqual(try Tokenizer.deserialize(t.serialized()), t)
        XCTAssertThrowsError(try Tokenizer.deserialize("{\"words\": [\"a\"], \"max_tokens\": 3}")) { e in
            XCTAssertEqual("\(e)", "tokenizer vocabulary must start with [\"<pad>\", \"<unk>\", \"<start>\"]")
        }
    }
}
