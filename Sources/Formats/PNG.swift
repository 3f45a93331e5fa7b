import CPNG
import Foundation
import TensorCore

/// An 8-bit image: `channels` 1 (gray) or 3 (RGB), pixels row-major and interleaved (PNG order).
public struct PNGImage: Sendable, Equatable {
    public var width: Int
    public var height: Int
    public var channels: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) throws {
        guard width > 0, height > 0, channels == 1 || channels == 3 else {
            throw DataError("PNG image: need width, height > 0 and 1 or 3 channels, got \(width)x\(height)x\(channels)")
        }
        guard pixels.count == width * height * channels else {
            throw DataError("PNG image: \(pixels.count) bytes for \(width)x\(height)x\(channels) (expected \(width * height * channels))")
        }
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }

    /// From a [C, H, W] image in [-1, 1] (C = 1 or 3); values outside are clipped.
    public init(chw: UnsafeBufferPointer<Float>, channels: Int, height: Int, width: Int) throws {
        guard chw.count == channels * height * width else {
            throw DataError("PNG image: \(chw.count) floats for [\(channels), \(height), \(width)]")
        }
        var px = [UInt8](repeating: 0, count: chw.count)
        let plane = height * width
        for c in 0..<channels {
            for i in 0..<plane { px[i * channels + c] = toByte(chw[c * plane + i]) }
        }
        try self.init(width: width, height: height, channels: channels, pixels: px)
    }

    /// Writes the image as PNG, atomically (a temporary file in the same folder, then rename).
    public func write(to path: String) throws {
        try atomicWrite(encoded(naming: path), to: path)
    }

    /// The PNG file's bytes (e.g. for a data: URL or an HTTP answer); `name` labels errors.
    public func encoded(naming name: String = "image") throws -> Data {
        var img = png_image()
        img.version = UInt32(PNG_IMAGE_VERSION)
        img.width = UInt32(width)
        img.height = UInt32(height)
        img.format = channels == 3 ? UInt32(PNG_FORMAT_RGB) : UInt32(PNG_FORMAT_GRAY)
        var size = 0
        // First call sizes the buffer, the second fills it (libpng's simplified API, which
        // reports errors by return value instead of longjmp, which Swift cannot survive).
        let sized = pixels.withUnsafeBytes { px in
            png_image_write_to_memory(&img, nil, &size, 0, px.baseAddress, 0, nil)
        }
        guard sized != 0, size > 0 else { throw DataError("\(name): cannot encode PNG: \(message(&img))") }
        var out = [UInt8](repeating: 0, count: size)
        let ok = out.withUnsafeMutableBytes { o in
            pixels.withUnsafeBytes { px in png_image_write_to_memory(&img, o.baseAddress, &size, 0, px.baseAddress, 0, nil) }
        }
        guard ok != 0 else { throw DataError("\(name): cannot encode PNG: \(message(&img))") }
        return Data(out[0..<size])
    }

    /// Reads an 8-bit gray or RGB view of any PNG (alpha composited on black, 16-bit reduced).
    public static func read(_ path: String) throws -> PNGImage {
        guard FileManager.default.fileExists(atPath: path) else { throw DataError("\(path): no such file") }
        var img = png_image()
        img.version = UInt32(PNG_IMAGE_VERSION)
        guard png_image_begin_read_from_file(&img, path) != 0 else {
            throw DataError("\(path): not a readable PNG: \(message(&img))")
        }
        let channels = img.format & UInt32(PNG_FORMAT_FLAG_COLOR) != 0 ? 3 : 1
        img.format = channels == 3 ? UInt32(PNG_FORMAT_RGB) : UInt32(PNG_FORMAT_GRAY)
        let w = Int(img.width), h = Int(img.height)
        var px = [UInt8](repeating: 0, count: w * h * channels)
        let ok = px.withUnsafeMutableBytes { png_image_finish_read(&img, nil, $0.baseAddress, 0, nil) }
        guard ok != 0 else {
            png_image_free(&img)
            throw DataError("\(path): corrupt PNG: \(message(&img))")
        }
        return try PNGImage(width: w, height: h, channels: channels, pixels: px)
    }
}

@inline(__always)
func toByte(_ v: Float) -> UInt8 {
    let x = (v + 1) * 127.5
    return x.isNaN ? 0 : UInt8(max(0, min(255, x.rounded())))
}

private func message(_ img: inout png_image) -> String {
    withUnsafeBytes(of: &img.message) { raw in
        let bytes = raw.prefix(while: { $0 != 0 })
        return bytes.isEmpty ? "unknown libpng error" : String(decoding: bytes, as: UTF8.self)
    }
}

// MARK: - Convenience writers

/// Writes 8-bit interleaved pixels (row-major; 1 = gray, 3 = RGB) as a PNG, atomically.
public func writePNG(path: String, pixels: [UInt8], width: Int, height: Int, channels: Int) throws {
    try PNGImage(width: width, height: height, channels: channels, pixels: pixels).write(to: path)
}

/// Writes one [C, H, W] image in [-1, 1] (C = 1 or 3, planar as in tensors) as a PNG, atomically.
public func writePNG(path: String, image: [Float], channels: Int, height: Int, width: Int) throws {
    try image.withUnsafeBufferPointer {
        try PNGImage(chw: $0, channels: channels, height: height, width: width).write(to: path)
    }
}

/// Tiles images [N, C, H, W] in [-1, 1] (C = 1 or 3) into one picture: `columns` per row (nil: about
/// square), `padding` pixels of `background` (in [-1, 1]; 1 = white) between and around tiles,
/// each pixel repeated `upscale` x `upscale` times (nearest neighbour).
public func imageGrid(images: UnsafeBufferPointer<Float>, shape: [Int], columns: Int? = nil, padding: Int = 2,
                      upscale: Int = 1, background: Float = 1) throws -> PNGImage {
    guard shape.count == 4, shape.allSatisfy({ $0 > 0 }), images.count == ShapeUtil.count(shape) else {
        throw DataError("imageGrid: \(images.count) floats with shape \(shape); expected [N, C, H, W] with N, C, H, W > 0")
    }
    let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
    guard c == 1 || c == 3 else {
        throw DataError("imageGrid: images have \(c) channels; need 1 (gray) or 3 (RGB) (plot 2-D points with scatterPlot)")
    }
    guard padding >= 0, upscale >= 1, (columns ?? 1) >= 1 else {
        throw DataError("imageGrid: need padding >= 0, upscale >= 1, columns >= 1")
    }
    let cols = min(n, columns ?? Int(Double(n).squareRoot().rounded(.up)))
    let rows = (n + cols - 1) / cols
    let th = h * upscale, tw = w * upscale
    let gw = cols * tw + (cols + 1) * padding, gh = rows * th + (rows + 1) * padding
    var px = [UInt8](repeating: toByte(background), count: gw * gh * c)
    let plane = h * w
    for k in 0..<n {
        let ox = padding + (k % cols) * (tw + padding), oy = padding + (k / cols) * (th + padding)
        let base = k * c * plane
        for y in 0..<th {
            let sy = y / upscale
            for x in 0..<tw {
                let sx = x / upscale, o = ((oy + y) * gw + ox + x) * c
                for ch in 0..<c { px[o + ch] = toByte(images[base + ch * plane + sy * w + sx]) }
            }
        }
    }
    return try PNGImage(width: gw, height: gh, channels: c, pixels: px)
}

public func imageGrid(images: Storage, shape: [Int], columns: Int? = nil, padding: Int = 2,
                      upscale: Int = 1, background: Float = 1) throws -> PNGImage {
    try imageGrid(images: UnsafeBufferPointer(images.buffer), shape: shape, columns: columns, padding: padding,
                  upscale: upscale, background: background)
}

/// `imageGrid` written straight to a PNG file (atomically).
public func writeImageGrid(path: String, images: Storage, shape: [Int], columns: Int? = nil, padding: Int = 2,
                           upscale: Int = 1, background: Float = 1) throws {
    try imageGrid(images: images, shape: shape, columns: columns, padding: padding, upscale: upscale,
                  background: background).write(to: path)
}

/// A scatter plot of 2-D points ([N, 2] or [N, 2, 1, 1], both axes spanning [-extent, extent]) on
/// a white `size` x `size` RGB canvas: 3x3 dots coloured by `labels` (a fixed 8-colour palette,
/// cycling) or black. For toy2d samples, where a grid of 1x1 "images" says nothing.
public func scatterPlot(points: UnsafeBufferPointer<Float>, count: Int, labels: [Int]? = nil,
                        size: Int = 256, extent: Float = 1.2) throws -> PNGImage {
    guard points.count == count * 2 else {
        throw DataError("scatterPlot: \(points.count) floats for \(count) points (need 2 per point)")
    }
    guard labels.map({ $0.count == count }) ?? true, size >= 8, extent > 0 else {
        throw DataError("scatterPlot: need one label per point, size >= 8 and extent > 0")
    }
    let palette: [(UInt8, UInt8, UInt8)] = [
        (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40),
        (148, 103, 189), (140, 86, 75), (227, 119, 194), (23, 190, 207),
    ]
    var px = [UInt8](repeating: 255, count: size * size * 3)
    // Axes through the origin in light gray.
    let mid = size / 2
    for i in 0..<size {
        for o in [(mid * size + i) * 3, (i * size + mid) * 3] { px[o] = 220; px[o + 1] = 220; px[o + 2] = 220 }
    }
    let scale = Float(size - 1) / (2 * extent)
    for i in 0..<count {
        let x = points[2 * i], y = points[2 * i + 1]
        guard x.isFinite, y.isFinite else { continue }
        let cx = Int(((x + extent) * scale).rounded()), cy = Int(((extent - y) * scale).rounded())
        let col = labels.map { palette[(($0[i] % palette.count) + palette.count) % palette.count] } ?? (0, 0, 0)
        for dy in -1...1 {
            for dx in -1...1 {
                let px_ = cx + dx, py = cy + dy
                guard px_ >= 0, px_ < size, py >= 0, py < size else { continue }
                let o = (py * size + px_) * 3
                px[o] = col.0; px[o + 1] = col.1; px[o + 2] = col.2
            }
        }
    }
    return try PNGImage(width: size, height: size, channels: 3, pixels: px)
}
