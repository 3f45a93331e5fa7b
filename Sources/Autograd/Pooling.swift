import TensorCore

// Average pooling and nearest-neighbour upsampling over the last two axes of [N, C, H, W]
// (or [C, H, W]). Both act plane by plane; planes run in parallel. Each is linear, and its
// pullback is the transposed map: spread each output gradient evenly over its window, or sum
// each scale x scale block back into its source pixel.

extension Tensor {
    /// Mean over kernel x kernel windows, no padding; stride defaults to the kernel size
    /// (torch.nn.functional.avg_pool2d with padding 0, floor mode).
    public func avgPool2d(kernel: Int, stride: Int? = nil) throws -> Tensor {
        let x = self
        let s = stride ?? kernel
        guard x.rank == 3 || x.rank == 4 else {
            throw ShapeError(op: "avgPool2d", "input must have shape [N, C, H, W] or [C, H, W], got \(x.shape)")
        }
        let h = x.shape[x.rank - 2], w = x.shape[x.rank - 1]
        guard kernel >= 1, s >= 1 else {
            throw ShapeError(op: "avgPool2d", "kernel and stride must be >= 1, got kernel \(kernel), stride \(s)")
        }
        guard kernel <= h, kernel <= w else {
            throw ShapeError(op: "avgPool2d", "kernel \(kernel)x\(kernel) is larger than the input \(x.shape)")
        }
        let oh = (h - kernel) / s + 1, ow = (w - kernel) / s + 1
        let planes = x.count / (h * w)
        let outShape = Array(x.shape.dropLast(2)) + [oh, ow]
        let out = Storage(uninitializedCount: planes * oh * ow)
        let xp = x.storage.ptr, yp = out.ptr
        let inv = 1 / Float(kernel * kernel)

        Parallel.items(planes, costPerItem: oh * ow * kernel * kernel) { pl in
            let src = xp + pl * h * w, dst = yp + pl * oh * ow
            for i in 0..<oh {
                let d = dst + i * ow
                d.update(repeating: 0, count: ow)
                // Add the window's rows one at a time: inner loops run along contiguous memory.
                for ki in 0..<kernel {
                    let r = src + (i * s + ki) * w
                    for j in 0..<ow {
                        var acc: Float = 0
                        for kj in 0..<kernel { acc += r[j * s + kj] }
                        d[j] += acc
                    }
                }
                for j in 0..<ow { d[j] *= inv }
            }
        }

        return Tensor.result("avgPool2d", shape: outShape, storage: out, inputs: [x]) { g in
            let gx = Storage(zeros: x.count)
            let gp = g.storage.ptr, dxp = gx.ptr
            Parallel.items(planes, costPerItem: oh * ow * kernel * kernel) { pl in
                let src = gp + pl * oh * ow, dst = dxp + pl * h * w
                for i in 0..<oh {
                    for ki in 0..<kernel {
                        let r = dst + (i * s + ki) * w
                        for j in 0..<ow {
                            let v = src[i * ow + j] * inv
                            for kj in 0..<kernel { r[j * s + kj] += v }
                        }
                    }
                }
            }
            return [Tensor(shape: x.shape, storage: gx)]
        }
    }

    /// Repeats each pixel into a scale x scale block: [.., H, W] -> [.., H*scale, W*scale].
    public func upsampleNearest2d(scale: Int) throws -> Tensor {
        let x = self
        guard x.rank == 3 || x.rank == 4 else {
            throw ShapeError(op: "upsampleNearest2d", "input must have shape [N, C, H, W] or [C, H, W], got \(x.shape)")
        }
        guard scale >= 1 else {
            throw ShapeError(op: "upsampleNearest2d", "scale must be >= 1, got \(scale) for input \(x.shape)")
        }
        let h = x.shape[x.rank - 2], w = x.shape[x.rank - 1]
        let oh = h * scale, ow = w * scale
        let planes = h * w == 0 ? 0 : x.count / (h * w)
        let outShape = Array(x.shape.dropLast(2)) + [oh, ow]
        let out = Storage(uninitializedCount: planes * oh * ow)
        let xp = x.storage.ptr, yp = out.ptr

        Parallel.items(planes, costPerItem: oh * ow) { pl in
            let src = xp + pl * h * w, dst = yp + pl * oh * ow
            for i in 0..<h {
                // Build the widened row once, then copy it to the other scale - 1 output rows.
                let first = dst + i * scale * ow, r = src + i * w
                for j in 0..<w {
                    let v = r[j]
                    for k in 0..<scale { first[j * scale + k] = v }
                }
                for k in 1..<scale { (first + k * ow).update(from: first, count: ow) }
            }
        }

        return Tensor.result("upsampleNearest2d", shape: outShape, storage: out, inputs: [x]) { g in
            let gx = Storage(uninitializedCount: x.count)
            let gp = g.storage.ptr, dxp = gx.ptr
            Parallel.items(planes, costPerItem: oh * ow) { pl in
                let src = gp + pl * oh * ow, dst = dxp + pl * h * w
                for i in 0..<h {
                    let d = dst + i * w
                    d.update(repeating: 0, count: w)
                    for k in 0..<scale {
                        let r = src + (i * scale + k) * ow
                        for j in 0..<w {
                            var acc: Float = 0
                            for kk in 0..<scale { acc += r[j * scale + kk] }
                            d[j] += acc
                        }
                    }
                }
            }
            return [Tensor(shape: x.shape, storage: gx)]
        }
    }
}
