import Autograd
import Formats

/// A picture of samples: an image grid, or a scatter plot for 2-D points. `reflow-sample` writes
/// it to a file and `reflow serve` sends its bytes, so both show the same pixels.
public func sampleImage(images: Tensor, columns: Int, labels: [Int]? = nil) throws -> PNGImage {
    if images.shape.count == 4 && images.shape[2] == 1 && images.shape[3] == 1 && images.shape[1] == 2 {
        return try scatterPlot(points: UnsafeBufferPointer(start: images.storage.ptr, count: images.count), count: images.shape[0],
                               labels: labels)
    }
    return try imageGrid(images: images.storage, shape: images.shape, columns: columns, padding: 1,
                         upscale: images.shape[3] <= 8 ? 4 : 2)
}

/// `sampleImage` written to a PNG file (atomically).
public func writeSampleImage(path: String, images: Tensor, columns: Int, labels: [Int]? = nil) throws {
    try sampleImage(images: images, columns: columns, labels: labels).write(to: path)
}
