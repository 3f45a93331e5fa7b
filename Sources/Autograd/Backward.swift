import TensorCore

extension Tensor {
    /// Reverse-mode pass from a scalar (or from `seed`, the gradient of some scalar with
    /// respect to this tensor). Gradients of leaves that require them accumulate into `grad`;
    /// the tape (inputs, pullbacks, intermediate gradients) is released afterwards.
    public func backward(_ seed: Tensor? = nil) {
        let g0: Tensor
        if let seed {
            precondition(seed.shape == shape, "backward: seed shape \(seed.shape) != tensor shape \(shape)")
            g0 = seed
        } else {
            precondition(count == 1, "backward: called on a tensor of shape \(shape); pass a seed gradient or reduce to a scalar first")
            g0 = Tensor.ones(shape)
        }
        guard requiresGrad else { return }
        let order = topologicalOrder()
        var grads: [ObjectIdentifier: Tensor] = [ObjectIdentifier(self): g0]
        GradMode.noGrad {
            for node in order.reversed() {
                let id = ObjectIdentifier(node)
                guard let g = grads.removeValue(forKey: id) else { continue }
                guard let pb = node.pullback else {
                    // A leaf: accumulate out of place (a gradient may be shared by several inputs).
                    node.grad = node.grad.map { addSame($0, g) } ?? g
                    continue
                }
                let start = OpProfile.enabled ? OpProfile.now() : 0
                let inGrads = pb(g)
                if OpProfile.enabled { OpProfile.backwardDone(node.opName ?? "op", since: start) }
                for (inp, ig) in zip(node.inputs, inGrads) {
                    guard inp.requiresGrad, let ig else { continue }
                    precondition(ig.shape == inp.shape,
                                 "backward: \(node.opName ?? "op") returned gradient \(ig.shape) for input \(inp.shape)")
                    let k = ObjectIdentifier(inp)
                    grads[k] = grads[k].map { addSame($0, ig) } ?? ig
                }
            }
        }
        // Free the graph: intermediate buffers go as soon as nothing else holds them.
        for node in order where node.pullback != nil {
            node.inputs = []
            node.pullback = nil
        }
    }

    /// Nodes reachable from self, inputs before outputs (iterative DFS: deep graphs are fine).
    func topologicalOrder() -> [Tensor] {
        var order: [Tensor] = []
        var visited = Set<ObjectIdentifier>()
        var stack: [(Tensor, Bool)] = [(self, false)]
        while let (node, expanded) = stack.popLast() {
            if expanded { order.append(node); continue }
            let id = ObjectIdentifier(node)
            if visited.contains(id) { continue }
            visited.insert(id)
            stack.append((node, true))
            for inp in node.inputs where inp.requiresGrad && !visited.contains(ObjectIdentifier(inp)) {
                stack.append((inp, false))
            }
        }
        return order
    }
}
