import Formats
import Foundation
import TensorCore
import XCTest
import TestSupport

final class PNGTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "png-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(atPath: dir) }

    func testRoundTripGrayAndRGB() throws {
        for channels in [1, 3] {
            let (w, h) = (7, 5)
            let px = (0..<(w * h * channels)).map { UInt8(($0 * 37) % 256) }
            let path = dir + "/img\(channels).png"
            try writePNG(path: path, pixels: px, width: w, height: h, channels: channels)
            let back = try PNGImage.read(path)
            XCTAssertEqual(back, try PNGImage(width: w, height: h, channels: channels, pixels: px))
            // Atomic write: no temporary left behind.
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.contains("tmp") }, [])
        }
    }

    func testFloatImageIsPlanarAndClipped() throws {
        // [C=3, H=1, W=2]: red plane, green plane, blue plane.
        let chw: [Float] = [-1, 1, 0, 2, 1, -3]
        let path = dir + "/rgb.png"
        try writePNG(path: path, image: chw, channels: 3, height: 1, width: 2)
        XCTAssertEqual(try PNGImage.read(path).pixels, [0, 128, 255, 255, 255, 0])
    }

    func testGridLayout() throws {
        // Three 2x2 gray images of constant value, 2 columns, padding 1, upscale 2.
        let values: [Float] = [-1, 0, 1]
        let images = Storage(values.flatMap { [Float](repeating: $0, count: 4) })
        let g = try imageGrid(images: images, shape: [3, 1, 2, 2], columns: 2, padding: 1, upscale: 2, background: 1)
        XCTAssertEqual(g.width, 2 * 4 + 3)
        XCTAssertEqual(g.height, 2 * 4 + 3)
        XCTAssertEqual(g.pixels[0], 255)  // padding
        XCTAssertEqual(g.pixels[1 * g.width + 1], 0)  // tile 0
        XCTAssertEqual(g.pixels[1 * g.width + 6], 128)  // tile 1
        XCTAssertEqual(g.pixels[6 * g.width + 1], 255)  // tile 2
        XCTAssertEqual(g.pixels[6 * g.width + 6], 255)  // empty slot = background
        let path = dir + "/grid.png"
        try writeImageGrid(path: path, images: images, shape: [3, 1, 2, 2], columns: 2, padding: 1, upscale: 2)
        XCTAssertEqual(try PNGImage.read(path), g)
        XCTAssertThrowsError(try imageGrid(images: images, shape: [6, 2, 1, 1]))
    }

    func testScatterPlot() throws {
        let pts: [Float] = [0.5, 0.5, -0.5, -0.5]
        let img = try pts.withUnsafeBufferPointer { try scatterPlot(points: $0, count: 2, labels: [0, 1], size: 64) }
        XCTAssertEqual(img.channels, 3)
        XCTAssertEqual(img.pixels.count, 64 * 64 * 3)
        XCTAssertTrue(img.pixels.contains(119))  // palette colour 0 drawn
    }

    func testReadErrors() throws {
        let path = dir + "/not.png"
        try Foundation.Data("hello".utf8).write(to: URL(fileURLWithPath: path))
        XCTAssertThrowsError(try PNGImage.read(path)) { XCTAssertTrue("\($0)".contains(path)) }
        XCTAssertThrowsError(try PNGImage.read(dir + "/missing.png")) { XCTAssertTrue("\($0)".contains("no such file")) }
    }
}
