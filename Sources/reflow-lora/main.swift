import ArgumentParser
import Adapters
import ReflowCLI
import Foundation
import TensorCore

BLASLauncher.reexecIfNeeded()

struct ReflowLoRA: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reflow-lora",
        abstract: "Work with LoRA adapter files (made by reflow-train --stage lora).",
        discussion: """
        - reflow-lora merge BASE LORA[:scale]... --output OUT: fold adapters into a checkpoint's weights.

        To apply adapters without merging, pass --lora FILE[:scale] to reflow-sample, reflow-eval or \
        reflow-gen-pairs.
        """,
        version: ReflowVersion.string,
        subcommands: [Merge.self])
}

struct Merge: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Write BASE with each adapter folded in: W += scale * (alpha / rank) * B A.",
        discussion: """
        The output is an ordinary checkpoint (every tool reads it); its metadata keeps the base's and \
        lists the merged adapters with their hashes (merged_loras). A LoRA trained neither on BASE nor on a \
        checkpoint BASE was trained from (its init_from lineage) is refused unless --allow-lora-transfer.

        Example: reflow-lora merge runs/quickstart/teacher.safetensors runs/quickstart/lora.safetensors:0.8 \
        --output teacher-lora.safetensors
        """)

    @Argument(help: "Base checkpoint.") var base: String
    @Argument(help: ArgumentHelp("Adapter files, each FILE or FILE:scale.", valueName: "lora[:scale]")) var loras: [String] = []
    @Option(name: .long, help: "Merged checkpoint to write (replaced if it exists).") var output: String
    @Flag(name: .long, help: "Merge adapters trained on another checkpoint of the same architecture.") var allowLoraTransfer = false

    func validate() throws {
        if loras.isEmpty { throw ValidationError("give at least one LoRA file after the base checkpoint") }
        for l in loras {
            do { _ = try LoRAUse(parsing: l) } catch let e as LoRAError { throw ValidationError(e.description) }
        }
        if URL(fileURLWithPath: output).standardizedFileURL == URL(fileURLWithPath: base).standardizedFileURL {
            throw ValidationError("--output \(output) is the base checkpoint; write the merged weights to another file")
        }
    }

    func run() throws {
        do {
            try requireOneRank("reflow-lora merge")
            let uses = try loras.map { try LoRAUse(parsing: $0) }
            let n = try mergeLoRAs(base: base, uses: uses, output: output, allowOtherBase: allowLoraTransfer)
            printResult("\(output): \(base) with \(uses.count) LoRA\(uses.count == 1 ? "" : "s") merged into \(n) layers")
        } catch { exitWithError(error) }
    }
}

ReflowLoRA.mainWithReflowErrors()
