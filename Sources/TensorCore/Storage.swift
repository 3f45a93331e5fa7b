/// A contiguous, 64-byte aligned buffer of Float32. Tensors share storage by reference; every op
/// that writes allocates a fresh one, so sharing is always safe.
public final class Storage: @unchecked Sendable {
    public let ptr: UnsafeMutablePointer<Float>
    public let count: Int

    /// Uninitialised storage (callers overwrite every element).
    public init(uninitializedCount count: Int) {
        precondition(count >= 0, "Storage: negative element count \(count)")
        self.count = count
        var raw: UnsafeMutableRawPointer?
        // 64-byte alignment: full AVX-512 lines for the kernels and for OpenBLAS.
        let rc = posix_memalign(&raw, 64, max(1, count) * MemoryLayout<Float>.stride)
        precondition(rc == 0 && raw != nil, "Storage: cannot allocate \(count) floats")
        ptr = raw!.bindMemory(to: Float.self, capacity: max(1, count))
    }

    public convenience init(zeros count: Int) {
        self.init(uninitializedCount: count)
        ptr.initialize(repeating: 0, count: count)
    }

    public convenience init(repeating value: Float, count: Int) {
        self.init(uninitializedCount: count)
        ptr.initialize(repeating: value, count: count)
    }

    public convenience init(_ values: [Float]) {
        self.init(uninitializedCount: values.count)
        values.withUnsafeBufferPointer { src in
            if let base = src.baseAddress { ptr.initialize(from: base, count: values.count) }
        }
    }

    public func copy() -> Storage {
        let s = Storage(uninitializedCount: count)
        s.ptr.initialize(from: ptr, count: count)
        return s
    }

    public var buffer: UnsafeMutableBufferPointer<Float> { UnsafeMutableBufferPointer(start: ptr, count: count) }
    public var array: [Float] { Array(buffer) }

    deinit { free(ptr) }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
