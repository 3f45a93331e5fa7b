/// C [m, n] = A [m, k] * B [k, n] (B and C row-major; A at a + i*aRow + p*aCol, so either
/// layout of A) for the thin products of Winograd
/// convolutions: m and k are channel counts (8-128), n a block of a few hundred tiles. A is read
/// as broadcast scalars and B streamed along its rows, so nothing is packed: sgemm's packing and
/// beta passes cost as much as the arithmetic at k = 32. Register block: 4 rows x 16 columns.
/// With `padded`, rows of B and C must have room up to n rounded up to 16 (Winograd's block
/// buffers do): the last partial strip is computed whole, its extra columns unused.
public enum SmallGEMM {
    typealias V8 = SIMD8<Float>

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>) -> V8 { UnsafeRawPointer(p).loadUnaligned(as: V8.self) }

    @inline(__always)
    static func store(_ v: V8, _ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).storeBytes(of: v, as: V8.self) }

    public static func multiply(m: Int, n: Int, k: Int, a: UnsafePointer<Float>, aRow: Int, aCol: Int,
                                b: UnsafePointer<Float>, ldb: Int, c: UnsafeMutablePointer<Float>, ldc: Int,
                                padded: Bool = false) {
        let vectorColumns = padded ? (n + 15) / 16 * 16 : n
        var j = 0
        while j + 16 <= vectorColumns {
            var i = 0
            while i + 4 <= m {
                block4x16(k, a + i * aRow, aRow, aCol, b + j, ldb, c + i * ldc + j, ldc)
                i += 4
            }
            while i < m {
                var c0 = V8(), c1 = V8()
                let pa = a + i * aRow
                var pb = b + j
                for p in 0..<k {
                    let s = V8(repeating: pa[p * aCol])
                    c0 = c0.addingProduct(s, load(pb)); c1 = c1.addingProduct(s, load(pb + 8))
                    pb += ldb
                }
                store(c0, c + i * ldc + j); store(c1, c + i * ldc + j + 8)
                i += 1
            }
            j += 16
        }
        // Last columns (fewer than 16): scalar.
        if j < n {
            for i in 0..<m {
                let pa = a + i * aRow, pc = c + i * ldc
                for jj in j..<n {
                    var s: Float = 0
                    for p in 0..<k { s += pa[p * aCol] * b[p * ldb + jj] }
                    pc[jj] = s
                }
            }
        }
    }

    @inline(__always)
    static func block4x16(_ k: Int, _ a: UnsafePointer<Float>, _ aRow: Int, _ aCol: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
                          _ c: UnsafeMutablePointer<Float>, _ ldc: Int) {
        var c00 = V8(), c01 = V8(), c10 = V8(), c11 = V8(), c20 = V8(), c21 = V8(), c30 = V8(), c31 = V8()
        var a0 = a, a1 = a + aRow, a2 = a + 2 * aRow, a3 = a + 3 * aRow
        var pb = b
        for _ in 0..<k {
            let b0 = load(pb), b1 = load(pb + 8)
            let s0 = V8(repeating: a0.pointee), s1 = V8(repeating: a1.pointee), s2 = V8(repeating: a2.pointee), s3 = V8(repeating: a3.pointee)
            a0 += aCol; a1 += aCol; a2 += aCol; a3 += aCol
            c00 = c00.addingProduct(s0, b0); c01 = c01.addingProduct(s0, b1)
            c10 = c10.addingProduct(s1, b0); c11 = c11.addingProduct(s1, b1)
            c20 = c20.addingProduct(s2, b0); c21 = c21.addingProduct(s2, b1)
            c30 = c30.addingProduct(s3, b0); c31 = c31.addingProduct(s3, b1)
            pb += ldb
        }
        store(c00, c); store(c01, c + 8)
        store(c10, c + ldc); store(c11, c + ldc + 8)
        store(c20, c + 2 * ldc); store(c21, c + 2 * ldc + 8)
        store(c30, c + 3 * ldc); store(c31, c + 3 * ldc + 8)
    }
}
