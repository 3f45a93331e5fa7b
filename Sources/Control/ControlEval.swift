import Foundation
import Autograd
import Datasets
import Evaluation
import Flow
import Generation
import Models
import Reporting
import TensorCore
import Diffusion

// reflow-eval --controlnet: every checkpoint with and without a ControlNet, on the same noise,
// the captions of held-out (test-split) images and the controls the ControlNet's operator makes
// from them. Control fidelity re-applies the operator to each generated image; FD is the
// evaluators' as in every table. Two data rows: the held-out images themselves (they match their
// controls by construction: the fidelity ceiling) and training images of the same classes (real
// images that ignore the controls: the floor a model without control should reach).

public struct ControlEvalCheckpoint: Equatable {
    public var label: String, path: String, steps: Int, guidance: Float
    public init(label: String, path: String, steps: Int, guidance: Float) {
        self.label = label; self.path = path; self.steps = steps; self.guidance = guidance
    }
}

public struct ControlEvalRequest {
    public var checkpoints: [ControlEvalCheckpoint]
    public var controlNet: ControlNetArgument
    public var samples: Int
    public var seeds: [UInt64]
    public var solver: SolverKind
    public var sampler: DiffusionSamplerKind
    public var batchSize: Int
    /// Where to write the grid (control | each checkpoint with the ControlNet), nil: none.
    public var gridPath: String?
    public var gridRows: Int

    /// No defaults: reflow-eval builds it from the config's `eval` section and its flags.
    public init(checkpoints: [ControlEvalCheckpoint], controlNet: ControlNetArgument, samples: Int, seeds: [UInt64], solver: SolverKind,
                sampler: DiffusionSamplerKind, batchSize: Int, gridPath: String?, gridRows: Int) {
        self.checkpoints = checkpoints; self.controlNet = controlNet; self.samples = samples; self.seeds = seeds
        self.solver = solver; self.sampler = sampler; self.batchSize = batchSize; self.gridPath = gridPath; self.gridRows = gridRows
    }
}

public struct ControlRow {
    public var model: String, steps: String, guidance: String, control: String
    public var fd: [Double] = [], fdSecond: [Double] = [], fdPixels: [Double] = [], mse: [Double] = [], iou: [Double] = []

    mutating func add(_ s: SampleScores, fidelity f: (mse: Double, iou: Double)) {
        fd.append(s.fdFeatures); fdPixels.append(s.fdPixels); mse.append(f.mse); iou.append(f.iou)
        if let x = s.fdSecond { fdSecond.append(x) }
    }
}

public struct ControlTable {
    public var rows: [ControlRow] = []
    public var note = ""

    public func markdown() -> String {
        var s = "| model | steps | guidance | control | edge MSE | edge IoU | FD (conv3) | FD (vgg) | FD (pixels) |\n"
        s += "|---|---:|---:|---|---:|---:|---:|---:|---:|\n"
        for r in rows {
            s += "| \(r.model) | \(r.steps) | \(r.guidance) | \(r.control) | \(formatSpread(r.mse, digits: 4)) | \(formatSpread(r.iou)) | "
            s += "\(formatSpread(r.fd)) | \(formatSpread(r.fdSecond)) | \(formatSpread(r.fdPixels)) |\n"
        }
        return s + "\n" + note + "\n"
    }
}

extension EvalContext {
    public func evaluateControl(_ r: ControlEvalRequest, test: Dataset, train: Dataset) throws -> ControlTable {
        let n = r.samples
        let held = try test.batch(indices: (0..<n).map { $0 % test.count })
        let real = Tensor(shape: held.shape, storage: held.images)
        var table = ControlTable()
        var op: ControlOperator? = nil, controls = real
        var gridColumns: [Tensor] = []
        for c in r.checkpoints {
            let (model, meta) = try load(c.path)
            let cn = try loadControlNet(URL(fileURLWithPath: r.controlNet.path), base: model, baseURL: URL(fileURLWithPath: c.path))
            if op == nil { op = cn.op; controls = try cn.op(real) }
            let method = try SampleMethod.forCheckpoint(metadata: meta, source: c.path,
                                                        solver: SolverSettings(kind: r.solver, steps: c.steps, rtol: 0, atol: 0), sampler: r.sampler)
            let scale = r.controlNet.scale ?? cn.trainedScale
            let attachment = ControlAttachment(net: cn.net, scale: scale)
            var plain = ControlRow(model: c.label, steps: "\(c.steps)", guidance: "\(c.guidance)", control: "none")
            var with = ControlRow(model: c.label, steps: "\(c.steps)", guidance: "\(c.guidance)",
                                  control: "ControlNet ×\(scale)")
            for (k, seed) in r.seeds.enumerated() {
                // A 25-step guided teacher takes minutes per seed: say what is running.
                Log.info("control eval \(c.label) @\(c.steps): seed \(seed) (\(k + 1)/\(r.seeds.count)), \(n) samples without, then with the ControlNet")
                let x0 = itemNoise(seed: seed, first: 0, count: n, itemShape: model.spec.itemShape)
                let a = try generate(model, x0: x0, prompts: held.captions, method: method, guidance: c.guidance, batchSize: r.batchSize)
                plain.add(try scoreImages(a.images, classes: [], reference: reference, imagesPerSecond: nil, nfe: a.nfe),
                          fidelity: try controlFidelity(a.images, controls: controls, op: cn.op))
                let b = try generateControlled(model, control: attachment, controls: controls, x0: x0, prompts: held.captions,
                                               method: method, guidance: c.guidance, batchSize: r.batchSize)
                with.add(try scoreImages(b.images, classes: [], reference: reference, imagesPerSecond: nil, nfe: b.nfe),
                         fidelity: try controlFidelity(b.images, controls: controls, op: cn.op))
                if k == 0 { gridColumns.append(try b.images.slice(axis: 0, range: 0..<min(r.gridRows, n))) }
            }
            Log.info("control eval \(c.label) @\(c.steps): edge IoU \(formatSpread(plain.iou)) -> \(formatSpread(with.iou)), FD \(formatSpread(plain.fd)) -> \(formatSpread(with.fd))")
            table.rows += [plain, with]
        }
        guard let op else { return table }
        var own = ControlRow(model: "data: the held-out images", steps: "–", guidance: "–", control: "their own")
        let sameClass = try sameClassTrainingImages(held.labels, train: train, count: n)
        var other = ControlRow(model: "data: training images of the same classes", steps: "–", guidance: "–", control: "none")
        for _ in r.seeds {
            own.add(try scoreImages(real, classes: [], reference: reference, imagesPerSecond: nil, nfe: 0),
                    fidelity: try controlFidelity(real, controls: controls, op: op))
            other.add(try scoreImages(sameClass, classes: [], reference: reference, imagesPerSecond: nil, nfe: 0),
                      fidelity: try controlFidelity(sameClass, controls: controls, op: op))
        }
        table.rows.insert(contentsOf: [own, other], at: 0)
        table.note = "\(n) samples per row and seed, seeds \(r.seeds.map(String.init).joined(separator: ", ")) (mean ± half the range); "
            + "sample i has the caption, and the control, of held-out (test split) image i mod \(test.count); same noise in every row. "
            + "Control operator: \(op); edge MSE = share of pixels where the operator applied to the image disagrees with the control, "
            + "edge IoU = |both| / |either| per image. FD = Fréchet distance to the \(test.name) test split (evaluator features, pixels)."
        if let path = r.gridPath {
            try writeControlGrid(path: path, controls: try controls.slice(axis: 0, range: 0..<min(r.gridRows, n)), outputs: gridColumns)
        }
        return table
    }
}

/// For each held-out label, the next training image with that label (cycling); without labels,
/// the first `count` training images.
func sameClassTrainingImages(_ labels: [Int]?, train: Dataset, count n: Int) throws -> Tensor {
    var idx = Array((0..<n).map { $0 % train.count })
    if let labels, let trainLabels = train.labels {
        var byClass: [Int: [Int]] = [:], used: [Int: Int] = [:]
        for (i, l) in trainLabels.enumerated() { byClass[l, default: []].append(i) }
        for (j, l) in labels.enumerated() {
            guard let pool = byClass[l], !pool.isEmpty else { continue }
            idx[j] = pool[used[l, default: 0] % pool.count]
            used[l, default: 0] += 1
        }
    }
    let b = try train.batch(indices: idx)
    return Tensor(shape: b.shape, storage: b.images)
}

/// One row per example: the control (0/1 shown as black/white), then each model's output.
public func writeControlGrid(path: String, controls: Tensor, outputs: [Tensor]) throws {
    let k = controls.shape[0], item = controls.count / max(k, 1)
    let cols = 1 + outputs.count
    let s = Storage(uninitializedCount: k * cols * item)
    for j in 0..<k {
        let row = s.ptr + j * cols * item
        for p in 0..<item { row[p] = controls.storage.ptr[j * item + p] * 2 - 1 }
        for (m, o) in outputs.enumerated() {
            guard o.count == controls.count else { throw ShapeError(op: "control grid", "output of shape \(o.shape) for controls \(controls.shape)") }
            (row + (m + 1) * item).update(from: o.storage.ptr + j * item, count: item)
        }
    }
    try writeSampleImage(path: path, images: Tensor(shape: [k * cols] + Array(controls.shape.dropFirst()), storage: s), columns: cols)
}

extension ControlEvalCheckpoint {
    /// "label=path@steps,guidance", "label=path@steps", "label=path" or "path" (label: the file's
    /// name; steps and guidance: the defaults given).
    public init(parsing s: String, defaultSteps: Int, defaultGuidance: Float) throws {
        var rest = Substring(s), steps = defaultSteps, guidance = defaultGuidance
        if let at = rest.lastIndex(of: "@") {
            let tail = rest[rest.index(after: at)...].split(separator: ",", omittingEmptySubsequences: false)
            guard (1...2).contains(tail.count), let n = Int(tail[0]), n >= 1 else {
                throw ModelError("--checkpoint \(s): after '@' give steps (a positive whole number) and optionally ',guidance'")
            }
            steps = n
            if tail.count == 2 {
                guard let w = Float(tail[1]), w.isFinite else { throw ModelError("--checkpoint \(s): guidance '\(tail[1])' is not a number") }
                guidance = w
            }
            rest = rest[..<at]
        }
        let label: String, path: String
        if let eq = rest.firstIndex(of: "=") {
            label = String(rest[..<eq]); path = String(rest[rest.index(after: eq)...])
        } else {
            path = String(rest); label = URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        }
        guard !path.isEmpty else { throw ModelError("--checkpoint \(s): no checkpoint path") }
        self.init(label: label, path: path, steps: steps, guidance: guidance)
    }
}
