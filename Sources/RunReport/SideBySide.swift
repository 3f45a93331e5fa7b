import Foundation
import Autograd
import Diffusion
import Flow
import Formats
import Generation
import Models
import Reporting
import TensorCore

/// The side-by-side figure: one row per prompt, one column per model, every cell drawn from the
/// same noise (item i of `seed`) so the columns differ only by the model and its step count.
/// Returns the cell files (`report/sbs_r<row>_c<col>.png`, relative to the run folder) by row.
func writeSideBySide(columns: [ReportColumn], prompts: [String], perPrompt: Int, seed: UInt64,
                     runPath: String) throws -> [[String]] {
    guard !columns.isEmpty, !prompts.isEmpty, perPrompt >= 1 else { return [] }
    var cells = [[String]](repeating: [], count: prompts.count)
    let all = prompts.flatMap { [String](repeating: $0, count: perPrompt) }
    for (c, col) in columns.enumerated() {
        let (model, meta) = try FlowModel.load(from: URL(fileURLWithPath: col.checkpoint))
        let euler = SolverSettings(kind: .euler, steps: col.steps, rtol: 0, atol: 0)
        let method = try col.sampler.map { try SampleMethod.forCheckpoint(metadata: meta, source: col.checkpoint, solver: euler, sampler: $0) }
            ?? .ode(euler.makeSolver())
        try checkPromptWords(prompts, tokenizer: model.tokenizer)
        let shape = model.spec.itemShape
        let x0 = itemNoise(seed: seed, first: 0, count: all.count, itemShape: shape)
        let (images, _) = try generate(model, x0: x0, prompts: all, method: method, guidance: col.guidance)
        for r in prompts.indices {
            let rel = "report/sbs_r\(r)_c\(c).png"
            let part = try images.slice(axis: 0, range: r * perPrompt..<(r + 1) * perPrompt)
            // One row of the picture the sample grids are made of (the same scale; toy2d: a scatter plot).
            try sampleImage(images: part, columns: perPrompt).write(to: runPath + "/" + rel)
            cells[r].append(rel)
        }
    }
    return cells
}
