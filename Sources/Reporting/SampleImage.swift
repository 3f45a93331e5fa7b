import Autograd
import Formats

/// A PNG of samples: an image grid, or a scatter plot for 2-D points.
public func writeSampleImage(path: String, images: Tensor, columns: Int, labels: [Int]? = nil) throws {
    if images.shape.count == 4 && images.shape[2] == 1 && images.shape[3] == 1 && images.shape[1] == 2 {
        try scatterPlot(points: UnsafeBufferPointer(start: images.storage.ptr, count: images.count), count: images.shape[0],
                        labels: labels).write(to: path)
    } else {
        try writeImageGrid(path: path, images: images.storage, shape: images.shape, columns: columns, padding: 1, upscale: images.shape[3] <= 8 ? 4 : 2)
    }
}
