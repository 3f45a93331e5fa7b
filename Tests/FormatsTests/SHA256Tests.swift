import Foundation
import XCTest
import Formats
import TestSupport

final class SHA256Tests: XCTestCase {
    func testSHA256KnownDigests() throws {
        XCTAssertEqual(SHA256.hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(SHA256.hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(SHA256.hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        // Streaming across odd piece sizes equals one shot.
        let text = String(repeating: "0123456789abcdefghij", count: 777)
        var s = SHA256()
        var rest = Substring(text)
        var k = 1
        while !rest.isEmpty { let n = min(k, rest.count); s.update(String(rest.prefix(n))); rest = rest.dropFirst(n); k = k * 3 % 97 + 1 }
        XCTAssertEqual(s.finalizeHex(), SHA256.hex(text))
        // A file against coreutils, when present.
        let dir = try makeTempDir("sha").path
        let path = dir + "/blob"
        try Data((0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) }).write(to: URL(fileURLWithPath: path))
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/sha256sum") {
            let p = Process(), pipe = Pipe()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
            p.arguments = [path]
            p.standardOutput = pipe
            try p.run()
            p.waitUntilExit()
            let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            XCTAssertEqual(String(out.prefix(64)), try SHA256.hex(file: path))
        }
    }
}
