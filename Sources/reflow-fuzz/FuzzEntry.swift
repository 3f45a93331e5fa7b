import Foundation

// One file set, two builds. With `-D FUZZING -sanitize=fuzzer,address` (scripts/fuzz.sh) main
// hands over to libFuzzer's driver (SwiftPM supplies `main` itself, so libFuzzer's own cannot be
// used), which calls `fuzzOneInput` with each input; REFLOW_FUZZ_TARGET picks the target. In the
// ordinary build this is a replay tool: `reflow-fuzz TARGET FILE...` runs saved inputs (a crash
// artifact, a corpus) without sanitizers.

#if FUZZING
typealias FuzzCallback = @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: FuzzCallback) -> CInt

nonisolated(unsafe) var fuzzTarget = FuzzTarget.config

@main
struct FuzzMain {
    static func main() {
        let name = ProcessInfo.processInfo.environment["REFLOW_FUZZ_TARGET"] ?? ""
        guard let t = FuzzTarget(rawValue: name) else {
            FileHandle.standardError.write(Data("set REFLOW_FUZZ_TARGET to one of: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))\n".utf8))
            exit(2)
        }
        fuzzTarget = t
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in
            fuzzTarget.run(UnsafeRawBufferPointer(start: data, count: size))
            return 0
        })
    }
}
#else
@main
struct ReplayFuzzInputs {
    static func main() {
        let args = Array(CommandLine.arguments.dropFirst())
        if args.count == 2, args[0] == "seeds" {
            do { try FuzzSeeds.write(to: args[1]) } catch { print("error: \(error)"); exit(1) }
            return
        }
        guard let first = args.first, let target = FuzzTarget(rawValue: first), args.count >= 2 else {
            print("""
                usage: reflow-fuzz {\(FuzzTarget.allCases.map(\.rawValue).joined(separator: "|"))} FILE...   replays saved fuzz inputs
                       reflow-fuzz seeds DIR                                writes the seed corpora
                (scripts/fuzz.sh builds the libFuzzer version and fuzzes)
                """)
            exit(64)
        }
        FuzzTarget.log = { print($0) }
        for path in args.dropFirst() {
            guard let data = FileManager.default.contents(atPath: path) else {
                print("\(path): cannot read"); exit(1)
            }
            print("\(path):")
            data.withUnsafeBytes { target.run($0) }
            print("\(path): no crash")
        }
    }
}
#endif
