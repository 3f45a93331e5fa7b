import TensorCore

extension Tensor {
    /// Same elements, new shape (one axis may be -1). Shares storage: tensors are contiguous.
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        var s = newShape
        let known = s.filter { $0 != -1 }.reduce(1, *)
        let unknown = s.filter { $0 == -1 }.count
        if unknown > 1 || s.contains(where: { $0 < -1 }) {
            throw ShapeError(op: "reshape", "invalid target shape \(newShape) for \(shape)")
        }
        if unknown == 1 {
            guard known > 0, count % known == 0 else {
                throw ShapeError(op: "reshape", "cannot reshape \(shape) (\(count) elements) to \(newShape)")
            }
            s[s.firstIndex(of: -1)!] = count / known
        }
        guard ShapeUtil.count(s) == count else {
            throw ShapeError(op: "reshape", "cannot reshape \(shape) (\(count) elements) to \(newShape)")
        }
        let x = self
        return Tensor.result("reshape", shape: s, storage: storage, inputs: [x]) { g in
            [Tensor(shape: x.shape, storage: g.storage)]
        }
    }

    /// Flattens all axes from `startAxis` on into one.
    public func flattened(from startAxis: Int = 1) throws -> Tensor {
        try reshaped(Array(shape.prefix(startAxis)) + [-1])
    }
}
