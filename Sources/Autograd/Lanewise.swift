import TensorCore

// Elementwise loops specialised on a type instead of a closure. A closure handed to the
// parallel loop is captured by the chunk body (which ThreadPool calls through a pointer), so
// every 16 lanes became an opaque call with its vector spilled to the stack and the math
// compiled at 128-bit width; a type's static function is known where the loop is specialised
// and inlines into it.

/// f(x) on 16 lanes.
protocol Lanewise1 { static func apply(_ x: K.V) -> K.V }
/// f(a, b) on 16 lanes.
protocol Lanewise2 { static func apply(_ a: K.V, _ b: K.V) -> K.V }
/// f(a, b) on 16 lanes and on single elements (broadcast rows' ends).
protocol Binary: Lanewise2 { static func apply(_ a: Float, _ b: Float) -> Float }

extension K {
    /// out[i] = F(x[i]), vectorised and parallel, F inlined.
    @inline(__always)
    static func map<F: Lanewise1>(_ x: Storage, _: F.Type) -> Storage {
        let out = Storage(uninitializedCount: x.count)
        let src = x.ptr, dst = out.ptr
        Parallel.chunks(x.count) { r in
            VMath.map(r.count, src + r.lowerBound, dst + r.lowerBound, F.apply)
        }
        return out
    }

    /// out[i] = F(x[i], y[i]) for equal-size buffers, F inlined.
    @inline(__always)
    static func zip<F: Lanewise2>(_ x: Storage, _ y: Storage, _: F.Type) -> Storage {
        precondition(x.count == y.count)
        let out = Storage(uninitializedCount: x.count)
        let a = x.ptr, b = y.ptr, dst = out.ptr
        Parallel.chunks(x.count) { r in
            NormKernels.zip(r.count, a + r.lowerBound, b + r.lowerBound, dst + r.lowerBound, F.apply)
        }
        return out
    }
}
