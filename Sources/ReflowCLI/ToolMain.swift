import ArgumentParser
import Foundation
import ConfigKit
import Distributed
import Experiments
import Reporting

// One error style and exit-code convention for every tool:
//   exit 64 (EX_USAGE, ArgumentParser's code): the command line is wrong (unknown flag, bad value,
//           missing --config); the usage line follows the message;
//   exit 1: the command line parsed but the work failed (missing file, bad config key, I/O);
//   both print `error: <message>` on stderr through `Log`: lower case like our `warning:` and
//   `note:` lines and like swiftc, clang and git, so scripts and people see one form.

/// The exit status of a usage error (sysexits.h EX_USAGE, as ArgumentParser exits).
public let usageExitCode: Int32 = 64

extension ParsableCommand {
    /// Parses the command line and runs the command like ArgumentParser's `main()`, but prints
    /// usage errors as `error: ...` through `Log`. `configHelp`: `--help-config` anywhere before
    /// `--` prints every config key and exits 0, like `--help` (so `--config` can be required
    /// and still not be needed to read the reference); the listed subcommands take no config.
    public static func mainWithReflowErrors(configHelp: Bool = false, subcommandsWithoutConfig: Set<String> = []) {
        let args = Array(CommandLine.arguments.dropFirst())
        if configHelp, !(args.first.map(subcommandsWithoutConfig.contains) ?? false),
           (args.firstIndex(of: "--").map { args[..<$0] } ?? args[...]).contains("--help-config") {
            print(ConfigKit.configHelp(ExperimentConfig.self))
            Foundation.exit(0)
        }
        do {
            var command = try parseAsRoot(args)
            try command.run()
        } catch {
            let code = exitCode(for: error)
            if code == .success { exit(withError: error) }  // --help, --version: ArgumentParser prints them
            var text = lowerCaseErrorLabel(fullMessage(for: error))
            // ArgumentParser reports a missing --config before an unknown flag; the flag is
            // the mistake to name (`reflow-train --bogus`).
            if code.rawValue == usageExitCode, let bad = unknownOption(in: args), !text.hasPrefix("error: Unknown option") {
                text = "error: Unknown option '\(bad)'\n" + (text.range(of: "Usage: ").map { String(text[$0.lowerBound...]) } ?? "")
            }
            Log.write(text + "\n", level: .error)
            RunFolder.removeUnusedNewFolders()
            Foundation.exit(code.rawValue)
        }
    }
}

extension ParsableCommand {
    /// The first argument (before `--`) that looks like a flag but is none of the invoked
    /// command's, from ArgumentParser's own description of the commands (`_dumpHelp`). Asked
    /// only once parsing failed, so a value that starts with `-` never fails a valid command.
    static func unknownOption(in args: [String]) -> String? {
        guard let json = try? JSONSerialization.jsonObject(with: Data(_dumpHelp().utf8)) as? [String: Any],
              let root = json["command"] as? [String: Any] else { return nil }
        func names(_ command: [String: Any]) -> Set<String> {
            let arguments = command["arguments"] as? [[String: Any]] ?? []
            return Set(arguments.flatMap { $0["names"] as? [[String: Any]] ?? [] }.compactMap { n -> String? in
                guard let kind = n["kind"] as? String, let name = n["name"] as? String else { return nil }
                return (kind == "long" ? "--" : "-") + name
            })
        }
        let subcommands = root["subcommands"] as? [[String: Any]] ?? []
        let invoked = subcommands.first { $0["commandName"] as? String == args.first }
            ?? subcommands.first { $0["commandName"] as? String == root["defaultSubcommand"] as? String }
        let known = names(root).union(invoked.map(names) ?? [])
        for arg in args {
            if arg == "--" { break }
            guard arg.hasPrefix("-"), arg != "-", Double(arg) == nil else { continue }
            let name = String(arg.prefix { $0 != "=" })
            if name.hasPrefix("--") {
                if !known.contains(name) { return name }
            } else if let c = name.dropFirst().first(where: { !known.contains("-\($0)") }) {
                return "-\(c)"
            }
        }
        return nil
    }
}

/// ArgumentParser labels its messages `Error: `; ours say `error: `.
func lowerCaseErrorLabel(_ text: String) -> String {
    text.hasPrefix("Error: ") ? "error: " + text.dropFirst("Error: ".count) : text
}

/// Prints a runtime error the way every tool does (`error: ...`), removes a run folder this
/// process created and left without results, and exits 1 (no stack trace for user errors).
/// Under mpirun it ends every rank: the others would wait for this one forever.
public func exitWithError(_ error: Error) -> Never {
    Log.error("\(error)")
    RunFolder.removeUnusedNewFolders()
    Communicator.world.abort(code: 1)
}
