import ArgumentParser
import Adapters
import Foundation
import Formats
import Models

/// `--lora FILE[:scale]` (repeatable) and `--allow-lora-transfer`, shared by reflow-sample,
/// reflow-eval and reflow-gen-pairs: the adapters are applied to every model the tool loads.
public struct LoRAOptions: ParsableArguments {
    @Option(name: .customLong("lora"), help: ArgumentHelp("LoRA adapter file to apply at load time, times scale (default 1); repeatable, added in order.", valueName: "file[:scale]"))
    public var lora: [String] = []
    @Flag(name: .long, help: "Apply --lora adapters to any checkpoint of the same architecture; without it, only to the one they were trained on and checkpoints trained from it (the teacher's LoRA on its 2-RF and student).")
    public var allowLoraTransfer = false

    public init() {}

    public func validate() throws {
        for l in lora {
            do { _ = try LoRAUse(parsing: l) } catch let e as LoRAError { throw ValidationError(e.description) }
        }
    }

    /// What a file made under these adapters records of them (pair files' `loras` attribute):
    /// each FILE:scale with the file's SHA-256; nil without --lora.
    public func record() throws -> String? {
        guard !lora.isEmpty else { return nil }
        return try lora.map { l -> String in
            let u = try LoRAUse(parsing: l)
            return "\(u.path):\(u.scale) sha256=\(try SHA256.hex(file: u.path))"
        }.joined(separator: "; ")
    }

    /// Makes every `FlowModel.load` of this process apply the adapters (checked against the
    /// loaded checkpoint: its hash or an ancestor's, unless --allow-lora-transfer, and every layer's shape).
    public func install() throws {
        let uses = try lora.map { try LoRAUse(parsing: $0) }
        guard !uses.isEmpty else { return }
        for u in uses where !FileManager.default.fileExists(atPath: u.path) {
            throw LoRAError("LoRA file \(u.path) not found (--lora \(u.description))")
        }
        let allow = allowLoraTransfer
        FlowModel.afterLoad = { model, url in
            try applyLoRAs(uses, to: model, checkpoint: url, allowOtherBase: allow)
        }
    }
}
