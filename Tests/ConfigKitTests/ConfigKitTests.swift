import XCTest
import ConfigKit
import TestSupport

final class ConfigKitTests: XCTestCase {
    func testAllProblemsReportedInLineOrder() {
        let yaml = """
        steps: x
        colour: red
        optim:
          lr: -1
        """
        XCTAssertEqual(errorText { try loadConfig(Toy.self, yaml: yaml, source: "t.yaml") }, """
        t.yaml:1: steps: expected an integer, found 'x'
        t.yaml:2: unknown key 'colour' (valid keys: name, steps, scale, verbose, tags, limit, solver, fallback, optim)
        t.yaml:4: optim.lr: must be positive
        """)
    }

    func testOptionalsAndNull() throws {
        let c = try loadConfig(Toy.self, yaml: "limit: 5\nfallback: heun\n", source: "t.yaml")
        XCTAssertEqual(c.limit, 5)
        XCTAssertEqual(c.fallback, .heun)
        let d = try loadConfig(Toy.self, yaml: "limit: null\nfallback: ~\n", source: "t.yaml", overrides: ["limit=5", "limit="])
        XCTAssertNil(d.limit)
        XCTAssertNil(d.fallback)
    }

    func testDumpOfSmallConfigExact() {
        var t = Toy()
        t.tags = ["a", "b c"]
        XCTAssertEqual(dumpConfig(t), """
        name: toy
        steps: 100
        scale: 0.5
        verbose: false
        tags: [a, b c]
        limit: null
        solver: euler
        fallback: null
        optim:
          lr: 0.001
          betas: [0.9, 0.999]

        """)
    }

    func testHelpListsEveryKey() {
        let rows = configHelpRows(Toy.self)
        XCTAssertEqual(rows.map(\.path), ["name", "steps", "scale", "verbose", "tags", "limit", "solver", "fallback",
                                          "optim", "optim.lr", "optim.betas"])
        XCTAssertEqual(rows[1], ConfigHelpRow(path: "steps", type: "int", defaultValue: "100", doc: "training steps"))
        XCTAssertEqual(rows[6].type, "euler|heun|rk4|dopri5")
        XCTAssertEqual(rows[5].type, "int?")
        XCTAssertEqual(rows[10].defaultValue, "[0.9, 0.999]")
    }

    func testYAMLProblems() {
        XCTAssertEqual(errorText { try loadConfig(Toy.self, yaml: "steps: 1\nsteps: 2\n", source: "t.yaml") },
                       "t.yaml:2: duplicate key 'steps'")
        XCTAssertEqual(errorText { try loadConfig(Toy.self, yaml: "- 1\n- 2\n", source: "t.yaml") },
                       "t.yaml:1: expected a mapping of keys at the top level, found a list")
        XCTAssertTrue(errorText { try loadConfig(Toy.self, yaml: "steps: [1, 2\n", source: "t.yaml") }.hasPrefix("t.yaml:2: invalid YAML: "))
        XCTAssertTrue(errorText { try loadConfig(Toy.self, path: "/nonexistent/x.yaml") }.hasPrefix("/nonexistent/x.yaml: cannot read the config file"))
    }

    /// No setting takes NaN or infinity: in a file, through --set, or by overflowing the type.
    func testNonFiniteNumbersRefused() {
        XCTAssertEqual(errorText { try loadConfig(Toy.self, yaml: "scale: .nan\n", source: "t.yaml") },
                       "t.yaml:1: scale: expected a finite number, found '.nan'")
        XCTAssertEqual(errorText { try loadConfig(Toy.self, yaml: "", source: "t.yaml", overrides: ["scale=-.inf"]) },
                       "--set: scale: expected a finite number, found '-.inf'")
        XCTAssertEqual(errorText { try loadConfig(Toy.self, yaml: "optim:\n  lr: 1e39\n", source: "t.yaml") },
                       "t.yaml:2: optim.lr: expected a finite number, found '1e39'")
        XCTAssertEqual(errorText { try loadConfig(Toy.self, yaml: "scale: 1e400\n", source: "t.yaml") },
                       "t.yaml:1: scale: expected a finite number, found '1e400'")
        XCTAssertEqual(try loadConfig(Toy.self, yaml: "scale: 3e38\n", source: "t.yaml").scale, 3e38)
    }

    /// An empty or comment-only file is refused instead of silently running the defaults.
    func testEmptyConfigFileRefused() throws {
        let path = NSTemporaryDirectory() + "/reflow-empty-\(getpid()).yaml"
        for text in ["", "\n\n", "# only a comment\n"] {
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            XCTAssertEqual(errorText { try loadConfig(Toy.self, path: path) },
                           "\(path): the config file has no settings (empty, or only comments); a config names at least its dataset")
        }
        try "steps: 3\n".write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertEqual(try loadConfig(Toy.self, path: path).steps, 3)
        try? FileManager.default.removeItem(atPath: path)
    }

    func testMergeKeysShareSettings() throws {
        let yaml = """
        base: &base
          lr: 0.01
        optim:
          <<: *base
          betas: [0.5, 0.9]
        """
        // `base` itself is not a key of Toy: anchors must live inside known keys or be reported.
        XCTAssertEqual(errorText { try loadConfig(Toy.self, yaml: yaml, source: "t.yaml") },
                       "t.yaml:1: unknown key 'base' (did you mean 'name'?)")
        let ok = """
        optim: &o
          lr: 0.01
        """
        XCTAssertEqual(try loadConfig(Toy.self, yaml: ok, source: "t.yaml").optim.lr, 0.01)
        let merged = try ConfigNode.parse(yaml: "a: &a {x: 1, y: 2}\nb:\n  <<: *a\n  y: 3\n", source: "m.yaml")
        XCTAssertEqual(merged[path: "b.x"]?.value, .scalar("1", quoted: false))
        XCTAssertEqual(merged[path: "b.y"]?.value, .scalar("3", quoted: false))
        XCTAssertEqual(merged[path: "b.y"]?.path, "b.y")
    }

    /// A run folder's config snapshot reads back as the same config.
}
