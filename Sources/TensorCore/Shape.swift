/// Shape helpers shared by kernels and ops. Shapes are plain `[Int]`, row-major, contiguous.
public enum ShapeUtil {
    @inlinable public static func count(_ shape: [Int]) -> Int { shape.reduce(1, *) }

    /// Row-major strides of a contiguous tensor.
    public static func strides(_ shape: [Int]) -> [Int] {
        var s = [Int](repeating: 1, count: shape.count)
        var acc = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) { s[i] = acc; acc *= shape[i] }
        return s
    }

    /// NumPy broadcasting of two shapes, or nil when they are incompatible.
    public static func broadcast(_ a: [Int], _ b: [Int]) -> [Int]? {
        let n = max(a.count, b.count)
        var out = [Int](repeating: 1, count: n)
        for i in 0..<n {
            let da = i < n - a.count ? 1 : a[i - (n - a.count)]
            let db = i < n - b.count ? 1 : b[i - (n - b.count)]
            if da == db || db == 1 { out[i] = da } else if da == 1 { out[i] = db } else { return nil }
        }
        return out
    }

    /// Resolves a possibly negative axis against a rank.
    public static func axis(_ axis: Int, rank: Int) -> Int? {
        let a = axis < 0 ? axis + rank : axis
        return (a >= 0 && a < rank) ? a : nil
    }
}

/// Errors the engine reports for bad input (shape mismatches, bad axes), naming the op and shapes.
public struct ShapeError: Error, CustomStringConvertible {
    public let op: String
    public let message: String
    public init(op: String, _ message: String) { self.op = op; self.message = message }
    public var description: String { "\(op): \(message)" }
}
