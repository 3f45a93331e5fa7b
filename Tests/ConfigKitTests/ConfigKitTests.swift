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
