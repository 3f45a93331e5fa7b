import XCTest
import Experiments
import ConfigKit
import Flow
import Reporting
import TestSupport

/// The experiment schema, decoded by the config engine: defaults, messages naming its keys.
final class ConfigTests: XCTestCase {
    func testDecodesSampleYAML() throws {
        let yaml = """
        name: digits-small   # a comment
        seed: 7
        dataset:
          name: fashion-mnist
          train_limit: 500
        model:
          kind: mlp
          channels: [16, 32, 64]
          dropout: 0.1
        teacher:
          steps: 1_000
          lr: 2e-4
          schedule: constant
          time_sampling: logit-normal
        distill:
          loss: pseudo-huber
          lr: 1e-4
          student_steps: 2
        pairs:
          solver: dopri5
          rtol: 1e-5
        sample:
          prompts: ["seven", 'the digit three', plain words]
        eval:
          steps: [1, 4]
          seeds:
            - 1
            - 2
        """
        let c = try loadConfig(ExperimentConfig.self, yaml: yaml, source: "sample.yaml")
        XCTAssertEqual(c.name, "digits-small")
        XCTAssertEqual(c.seed, 7)
        XCTAssertEqual(c.dataset.name, .fashionMNIST)
        XCTAssertEqual(c.dataset.trainLimit, 500)
        XCTAssertNil(c.dataset.root)
        XCTAssertEqual(c.model.kind, .mlp)
        XCTAssertEqual(c.model.channels, [16, 32, 64])
        XCTAssertEqual(c.model.dropout, 0.1)
        XCTAssertEqual(c.teacher.steps, 1000)
        XCTAssertEqual(c.teacher.lr, 2e-4)
        XCTAssertEqual(c.teacher.schedule, .constant)
        XCTAssertEqual(c.teacher.timeSampling, .logitNormal)
        XCTAssertEqual(c.distill.loss, .pseudoHuber)
        XCTAssertEqual(c.distill.lr, 1e-4)
        XCTAssertEqual(c.distill.train.lr, 1e-4)
        XCTAssertEqual(c.distill.studentSteps, 2)
        XCTAssertEqual(c.pairs.solver, .dopri5)
        XCTAssertEqual(c.pairs.rtol, 1e-5)
        XCTAssertEqual(c.sample.prompts, ["seven", "the digit three", "plain words"])
        XCTAssertEqual(c.eval.steps, [1, 4])
        XCTAssertEqual(c.eval.seeds, [1, 2])
    }

    func testDefaultsKeptWhenAbsent() throws {
        let c = try loadConfig(ExperimentConfig.self, yaml: "seed: 3\nteacher:\n  steps: 10\nreflow:\n", source: "x.yaml")
        var expected = ExperimentConfig()
        expected.seed = 3
        expected.teacher.steps = 10
        XCTAssertEqual(c, expected)
        XCTAssertEqual(c.threads, 2)
        XCTAssertEqual(c.outputDir, "runs")
        XCTAssertEqual(c.teacher.lr, TrainSection().lr)
        XCTAssertEqual(c.reflow, ExperimentConfig().reflow)
        // An empty document is all defaults.
        XCTAssertEqual(try loadConfig(ExperimentConfig.self, yaml: "", source: "empty.yaml"), ExperimentConfig())
    }

    /// ema_warmup decodes per stage, and appears in a dump only when on: stage hashes are made
    /// of dumps, and runs made before the key existed must stay up to date.
    func testEMAWarmupKeyDumpedOnlyWhenOn() throws {
        let c = try loadConfig(ExperimentConfig.self, yaml: "reflow:\n  ema_warmup: true\n", source: "x.yaml")
        XCTAssertTrue(c.reflow.emaWarmup)
        XCTAssertTrue(c.reflow.settings.emaWarmup)
        XCTAssertFalse(c.teacher.emaWarmup)
        XCTAssertFalse(c.teacher.settings.emaWarmup)
        XCTAssertTrue(dumpConfig(c.reflow).contains("ema_warmup: true"))
        XCTAssertFalse(dumpConfig(c.teacher).contains("ema_warmup"))
        XCTAssertEqual(dumpConfig(c.teacher), dumpConfig(ExperimentConfig().teacher))
        // The dump reads back to the same config.
        XCTAssertEqual(try loadConfig(ExperimentConfig.self, yaml: dumpConfig(c), source: "dump.yaml"), c)
        XCTAssertTrue(configHelp(ExperimentConfig.self).contains("reflow.ema_warmup"))
    }

    func testUnknownKeySuggestsNearest() {
        let yaml = """
        name: run
        teacher:
          steps: 10
          bach_size: 64
        """
        XCTAssertEqual(errorText { try loadConfig(ExperimentConfig.self, yaml: yaml, source: "experiments/digits.yaml") },
                       "experiments/digits.yaml:4: unknown key 'teacher.bach_size' (did you mean 'teacher.batch_size'?)")
        // A transposition is one edit; top-level keys have no prefix.
        XCTAssertEqual(errorText { try loadConfig(ExperimentConfig.self, yaml: "modle:\n  kind: mlp\n", source: "a.yaml") },
                       "a.yaml:1: unknown key 'modle' (did you mean 'model'?)")
        // Nothing close: list the keys of that section.
        XCTAssertEqual(errorText { try loadConfig(Toy.self, yaml: "optim:\n  momentum: 0.9\n", source: "t.yaml") },
                       "t.yaml:2: unknown key 'optim.momentum' (valid keys: lr, betas)")
    }

    func testWrongTypeNamesPathExpectedAndFound() {
        XCTAssertEqual(errorText { try loadConfig(ExperimentConfig.self, yaml: "teacher:\n  steps: many\n", source: "experiments/digits.yaml") },
                       "experiments/digits.yaml:2: teacher.steps: expected an integer, found 'many'")
        XCTAssertEqual(errorText { try loadConfig(Toy.self, yaml: "steps: 2.5", source: "t.yaml") },
                       "t.yaml:1: steps: expected an integer, found '2.5'")
        XCTAssertEqual(errorText { try loadConfig(Toy.self, yaml: "steps: \"5\"", source: "t.yaml") },
                       "t.yaml:1: steps: expected an integer, found the string \"5\"")
        XCTAssertEqual(errorText { try loadConfig(Toy.self, yaml: "verbose: yes", source: "t.yaml") },
                       "t.yaml:1: verbose: expected true or false, found 'yes'")
        XCTAssertEqual(errorText { try loadConfig(Toy.self, yaml: "limit: [1]", source: "t.yaml") },
                       "t.yaml:1: limit: expected an integer or null, found a list")
        XCTAssertEqual(errorText { try loadConfig(Toy.self, yaml: "optim:\n  betas: [0.9, x]\n", source: "t.yaml") },
                       "t.yaml:2: optim.betas[1]: expected a number, found 'x'")
        XCTAssertEqual(errorText { try loadConfig(Toy.self, yaml: "tags: one", source: "t.yaml") },
                       "t.yaml:1: tags: expected a list of string, found 'one'")
        XCTAssertEqual(errorText { try loadConfig(Toy.self, yaml: "optim: 3", source: "t.yaml") },
                       "t.yaml:1: optim: expected a section (a mapping of keys), found '3'")
        XCTAssertEqual(errorText { try loadConfig(Toy.self, yaml: "name:", source: "t.yaml") },
                       "t.yaml:1: name: expected a string, found null")
    }

    func testInvalidEnumListsValidValues() {
        XCTAssertEqual(errorText { try loadConfig(ExperimentConfig.self, yaml: "dataset:\n  name: mnist\n", source: "e.yaml") },
                       "e.yaml:2: dataset.name: expected one of toy2d, digits, fashion-mnist, glyphs, found 'mnist'")
        XCTAssertEqual(errorText { try loadConfig(Toy.self, yaml: "fallback: rk5", source: "t.yaml") },
                       "t.yaml:1: fallback: expected one of euler, heun, rk4, dopri5 or null, found 'rk5'")
    }

    func testSetOverrides() throws {
        let yaml = "teacher:\n  steps: 10\n"
        let c = try loadConfig(ExperimentConfig.self, yaml: yaml, source: "e.yaml", overrides: [
            "teacher.steps=20",            // replaces a file value
            "teacher.lr=3e-4",             // adds a key to a section in the file
            "distill.loss=pseudo-huber",   // a section absent from the file
            "model.channels=[8, 16]",      // flow list
            "sample.prompts=[a b, \"c, d\"]",
            "dataset.root=/data/x",
            "name=second",
            "name=third",                  // later overrides win
        ])
        XCTAssertEqual(c.teacher.steps, 20)
        XCTAssertEqual(c.teacher.lr, 3e-4)
        XCTAssertEqual(c.distill.loss, .pseudoHuber)
        XCTAssertEqual(c.model.channels, [8, 16])
        XCTAssertEqual(c.sample.prompts, ["a b", "c, d"])
        XCTAssertEqual(c.dataset.root, "/data/x")
        XCTAssertEqual(c.name, "third")
    }

    func testSetErrors() {
        XCTAssertEqual(errorText { try loadConfig(ExperimentConfig.self, yaml: "", source: "e.yaml", overrides: ["trian.steps=1"]) },
                       "--set: unknown key 'trian' (valid keys: name, seed, threads, output_dir, dataset, text, model, teacher, pairs, reflow, distill, sample, eval, lora, controlnet)")
        XCTAssertEqual(errorText { try loadConfig(ExperimentConfig.self, yaml: "", source: "e.yaml", overrides: ["teacher.steps=many"]) },
                       "--set: teacher.steps: expected an integer, found 'many'")
        XCTAssertEqual(errorText { try loadConfig(ExperimentConfig.self, yaml: "", source: "e.yaml", overrides: ["teacher.steps"]) },
                       "--set: 'teacher.steps': expected key.path=value")
        XCTAssertEqual(errorText { try loadConfig(ExperimentConfig.self, yaml: "name: a", source: "e.yaml", overrides: ["name.x=1"]) },
                       "--set: 'name.x=1': 'name' is not a section")
        XCTAssertEqual(errorText { try loadConfig(ExperimentConfig.self, yaml: "", source: "e.yaml", overrides: ["name.x=1"]) },
                       "--set: name: expected a string, found a mapping")
        XCTAssertTrue(errorText { try loadConfig(ExperimentConfig.self, yaml: "", source: "e.yaml", overrides: ["model.channels=[1, 2"]) }
            .hasPrefix("--set: model.channels: cannot read '[1, 2' as a YAML value ("))
    }

    func testSetUnknownKeyExactText() {
        XCTAssertEqual(errorText { try loadConfig(ExperimentConfig.self, yaml: "", source: "e.yaml", overrides: ["teacher.bach_size=1"]) },
                       "--set: unknown key 'teacher.bach_size' (did you mean 'teacher.batch_size'?)")
        XCTAssertEqual(errorText { try loadConfig(ExperimentConfig.self, yaml: "", source: "e.yaml", overrides: ["teacher.learning_rate=1e-4"]) },
                       "--set: unknown key 'teacher.learning_rate' (did you mean 'teacher.lr'?)")
        XCTAssertEqual(errorText { try loadConfig(ExperimentConfig.self, yaml: "", source: "e.yaml", overrides: ["sample.prompt=[a]"]) },
                       "--set: unknown key 'sample.prompt' (did you mean 'sample.prompts'?)")
    }

    func testDumpLoadRoundTrip() throws {
        var c = ExperimentConfig()
        c.name = "round trip"
        c.dataset.root = "/tmp/some dir/with: colon"
        c.dataset.trainLimit = 123
        c.sample.prompts = ["yes", "null", "3", "", "quote \" and \\ back", "tab\there", "naïve", "-x", "a, b"]
        c.teacher.lr = 0.1
        c.teacher.minLRRatio = 1e-7
        c.distill.loss = .pseudoHuber
        c.distill.huberC = 0.003
        c.pairs.rtol = 1e-6
        c.model.attentionLevels = []
        let yaml = dumpConfig(c)
        let back = try loadConfig(ExperimentConfig.self, yaml: yaml, source: "dump.yaml")
        XCTAssertEqual(back, c)
        XCTAssertEqual(dumpConfig(back), yaml)
        // Defaults round-trip too, and the dump is readable block YAML.
        XCTAssertEqual(try loadConfig(ExperimentConfig.self, yaml: dumpConfig(ExperimentConfig()), source: "d.yaml"), ExperimentConfig())
        XCTAssertTrue(yaml.contains("\nteacher:\n  steps: 4000\n  batch_size: 128\n  lr: 0.1\n"), yaml)
        XCTAssertTrue(yaml.contains("\n  channels: [32, 64]\n"), yaml)
        XCTAssertTrue(yaml.contains("\n  name: fashion-mnist\n") || yaml.contains("\n  name: digits\n"), yaml)
    }

    func testHelpListsEveryExperimentKey() {
        let text = configHelp(ExperimentConfig.self)
        for key in ["distill.student_steps", "distill.lr", "pairs.atol", "eval.seeds", "dataset.train_limit", "text.vocab_min_count"] {
            XCTAssertTrue(text.contains(key), key)
        }
    }

    func testLoadFromFile() throws {
        let dir = NSTemporaryDirectory() + "exp-config-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/digits.yaml"
        try "name: fromfile\nteacher:\n  steps: 5\n".write(toFile: path, atomically: true, encoding: .utf8)
        let c = try loadConfig(ExperimentConfig.self, path: path, overrides: ["teacher.batch_size=16"])
        XCTAssertEqual(c.name, "fromfile")
        XCTAssertEqual(c.teacher.steps, 5)
        XCTAssertEqual(c.teacher.batchSize, 16)
        XCTAssertEqual(errorText { try loadConfig(ExperimentConfig.self, path: path, overrides: ["teacher.steps=-1"]) },
                       "--set: teacher.steps: must not be negative")
    }

    func testConfigSnapshotLoadsBack() throws {
        let run = try RunFolder(root: makeTempDir("snapshot").path, name: "snap")
        var c = ExperimentConfig()
        c.teacher.steps = 77
        try run.writeConfig(dumpConfig(c))
        XCTAssertEqual(try loadConfig(ExperimentConfig.self, path: run.configPath), c)
    }

    /// The 2-RF++ options decode into the library's values; both are off by default.
    func testRecipeOptions() throws {
        let c = try loadConfig(ExperimentConfig.self, yaml: "reflow:\n  time_sampling: u-shaped\n  flow_loss: weighted-huber\n",
                               source: "r.yaml", overrides: ["reflow.time_u_a=3"])
        XCTAssertEqual(c.reflow.timeSampler, .uShaped(a: 3))
        XCTAssertEqual(c.reflow.flowLoss, .weightedHuber)
        XCTAssertEqual(ExperimentConfig().reflow.timeSampler, .uniform(eps: 0))
        XCTAssertEqual(ExperimentConfig().reflow.flowLoss, .l2)
        XCTAssertEqual(errorText { try loadConfig(ExperimentConfig.self, yaml: "reflow:\n  flow_loss: huber\n", source: "r.yaml") },
                       "r.yaml:2: reflow.flow_loss: expected one of l2, weighted-huber, found 'huber'")
    }
}
