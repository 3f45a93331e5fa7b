// swift-tools-version:6.0
import PackageDescription

// Release builds are the norm (tests included: `swift test -c release`): numeric loops in a
// debug build run 20-50x slower. They are `-O`, not `-Ounchecked`: bounds, overflow and
// precondition checks stay on everywhere, above all in the code that parses files and configs.
// The kernels work through unsafe pointers, which are unchecked in any mode, so the checks
// cost the benchmark little (README, "Checks on"). `-target-cpu native` lets the elementwise
// kernels use AVX-512 where the machine has it; the binary is built and run on the same
// machine (also in CI).
let fast: [SwiftSetting] = [
    .unsafeFlags(["-target-cpu", "native"], .when(configuration: .release)),
]

// What every thin command-line tool links.
let tool: [Target.Dependency] = ["Control", "Finetuning", "Experiments", "Distributed", "Sampling", "RunReport", "ReflowCLI", "ConfigKit", "Generation", "Reporting", "Diffusion", "Flow", "Models", "Formats", "TripletStore", "TensorCore", .product(name: "ArgumentParser", package: "swift-argument-parser")]

let package = Package(
    name: "Reflow",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "reflow-train", targets: ["reflow-train"]),
        .executable(name: "reflow-sample", targets: ["reflow-sample"]),
        .executable(name: "reflow-eval", targets: ["reflow-eval"]),
        .executable(name: "reflow-bench", targets: ["reflow-bench"]),
        .executable(name: "reflow-gen-pairs", targets: ["reflow-gen-pairs"]),
        .executable(name: "reflow-distill", targets: ["reflow-distill"]),
        .executable(name: "reflow", targets: ["reflow"]),
        .executable(name: "reflow-lora", targets: ["reflow-lora"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        // HTTP for `reflow serve` only (small, no SwiftNIO): the Serving target and the reflow tool.
        .package(url: "https://github.com/swhitty/FlyingFox", from: "0.27.1"),
    ],
    targets: [
        // System libraries, found by pkg-config. Their macros reach Swift via shim getters.
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CHDF5", path: "Sources/CHDF5", pkgConfig: "hdf5",
                       providers: [.apt(["libhdf5-dev"])]),
        .systemLibrary(name: "CPNG", path: "Sources/CPNG", pkgConfig: "libpng",
                       providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib",
                       providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi",
                       providers: [.apt(["libopenmpi-dev"])]),

        // Storage, shapes, kernels, threads, RNG. The only target that imports CBLAS.
        .target(name: "TensorCore", dependencies: ["CBLAS"], swiftSettings: fast),
        // The tape and every differentiable op (forward + pullback side by side).
        .target(name: "Autograd", dependencies: ["TensorCore"], swiftSettings: fast),
        // File formats: safetensors, PNG, SHA-256, the atomic file writer.
        .target(name: "Formats", dependencies: ["Autograd", "TensorCore", "CPNG", "CZlib"], swiftSettings: fast),
        // The crash-safe HDF5 (text, noise, image) triplet store.
        // Swift over the HDF5 C API: serialised calls, errors as messages, the superblock repair.
        .target(name: "HDF5", dependencies: ["Formats", "CHDF5"], swiftSettings: fast),
        .target(name: "TripletStore", dependencies: ["HDF5", "Formats", "TensorCore", "CHDF5"], swiftSettings: fast),
        // Ranks, allreduce, broadcast, barrier, abort over MPI; a single process without mpirun.
        // The only target that imports CMPI.
        .target(name: "Distributed", dependencies: ["CMPI"], swiftSettings: fast),
        // The training datasets (toy2d, digits, fashion-mnist, glyphs).
        .target(name: "Datasets", dependencies: ["Formats", "TensorCore", "CZlib"], swiftSettings: fast),
        // Modules, layers, optimizers, EMA, schedules, checkpoints of module trees.
        .target(name: "NN", dependencies: ["Formats", "Autograd", "TensorCore"], swiftSettings: fast),
        // The toolkit's networks: tokenizer, text encoder, velocity MLP and U-Net, evaluator
        // classifiers. Kept apart from NN so that NN stays a generic layer library.
        .target(name: "Models", dependencies: ["NN", "Formats", "Autograd", "TensorCore"], swiftSettings: fast),
        // LoRA: low-rank adapters on the velocity network's layers, their file, applying and merging.
        .target(name: "Adapters", dependencies: ["Models", "NN", "Reporting", "Formats", "Autograd", "TensorCore"], swiftSettings: fast),
        // Rectified-flow losses, time samplers, ODE solvers, guidance, straightness.
        .target(name: "Flow", dependencies: ["Autograd", "TensorCore"], swiftSettings: fast),
        // The diffusion teacher: its checkpoint description, the eps/v training loss on a discrete
        // VP schedule and the choice of sampler (the schedule and samplers themselves are in Flow).
        .target(name: "Diffusion", dependencies: ["Flow", "Autograd", "TensorCore"], swiftSettings: fast),
        // A model + a solver + guidance -> images: noise, guided velocity, batched generation, prompts.
        .target(name: "Generation", dependencies: ["Models", "Diffusion", "Flow", "Autograd", "TensorCore"], swiftSettings: fast),
        // Strict YAML configs: decoding with key paths, --set overrides, dumps, --help-config. No ML.
        .target(name: "ConfigKit", dependencies: [.product(name: "Yams", package: "Yams")], swiftSettings: fast),
        // What a run shows and keeps: the logger, progress lines, metrics.jsonl, run folders, plots.
        .target(name: "Reporting", dependencies: ["ConfigKit", "Formats", "Autograd", "TensorCore"], swiftSettings: fast),
        // The training loop and its data sources (dataset, triplet files); options are plain values.
        .target(name: "Training",
                dependencies: ["Distributed", "Generation", "Reporting", "Models", "NN", "Diffusion", "Flow", "Datasets", "TripletStore", "Formats", "Autograd", "TensorCore"],
                swiftSettings: fast),
        // Scoring: Frechet distance, prompt accuracy, straightness, distillation error, the results table.
        .target(name: "Evaluation",
                dependencies: ["Distributed", "Generation", "Reporting", "Models", "Diffusion", "Flow", "Datasets", "Formats", "Autograd", "TensorCore"],
                swiftSettings: fast),
        // A checkpoint's sampler run to files: triplet files (generatePairs) and sample grids (runSample, sampleGrid).
        .target(name: "Sampling",
                dependencies: ["Generation", "Reporting", "Models", "Diffusion", "Flow", "TripletStore", "Formats", "Autograd", "TensorCore"],
                swiftSettings: fast),
        // ControlNet: the control operator, the ControlNet file and its checks, controlled
        // sampling and the control table (the ControlNet module itself is in Models, beside UNet).
        .target(name: "Control",
                dependencies: ["Training", "Evaluation", "Sampling", "Generation", "Reporting", "Models", "NN", "Diffusion", "Flow", "Datasets", "Formats", "Autograd", "TensorCore"],
                swiftSettings: fast),
        // The experiment schema, the stages and the chain that runs them.
        .target(name: "Experiments",
                dependencies: ["Control", "ConfigKit", "Adapters", "Distributed", "Training", "Evaluation", "Sampling", "Generation", "Reporting", "Models", "NN", "Diffusion", "Flow",
                               "Datasets", "TripletStore", "Formats", "Autograd", "TensorCore"],
                swiftSettings: fast),

        // Stages that train a module beside a frozen checkpoint: LoRA adapters, the ControlNet
        // (kept apart from Experiments, which the chain needs, to keep both under 1,500 lines).
        .target(name: "Finetuning",
                dependencies: ["Experiments", "Adapters", "Control", "ConfigKit", "Training", "Evaluation", "Reporting", "Models", "NN", "Diffusion",
                               "Flow", "Datasets", "Formats", "Autograd", "TensorCore"],
                swiftSettings: fast),

        // The run report: results.md and report.html with the table, figures, curves, timings.
        .target(name: "RunReport",
                dependencies: ["Experiments", "Evaluation", "Generation", "Reporting", "ConfigKit", "Datasets", "Diffusion", "Flow", "Models",
                               "Formats", "Autograd", "TensorCore"],
                swiftSettings: fast),

        // `reflow serve`: the web demo and its JSON API over FlyingFox, sampling as reflow-sample does.
        .target(name: "Serving",
                dependencies: ["Experiments", "Sampling", "Generation", "Diffusion", "Reporting", "Models", "Flow", "Formats",
                               .product(name: "FlyingFox", package: "FlyingFox")],
                swiftSettings: fast),

        // Command-line flags shared by the tools.
        .target(name: "ReflowCLI",
                dependencies: ["Experiments", "Adapters", "Distributed", "Sampling", "ConfigKit", "Reporting", "Diffusion", "Flow", "Models", "NN", "Formats", "TripletStore",
                               .product(name: "ArgumentParser", package: "swift-argument-parser")],
                swiftSettings: fast),

        .executableTarget(name: "reflow-train", dependencies: tool, swiftSettings: fast),
        .executableTarget(name: "reflow-sample", dependencies: tool, swiftSettings: fast),
        .executableTarget(name: "reflow-eval", dependencies: tool, swiftSettings: fast),
        .executableTarget(name: "reflow-gen-pairs", dependencies: tool, swiftSettings: fast),
        .executableTarget(name: "reflow-distill", dependencies: tool, swiftSettings: fast),
        .executableTarget(name: "reflow", dependencies: tool + ["Serving"], swiftSettings: fast),
        .executableTarget(name: "reflow-lora", dependencies: tool + ["Adapters"], swiftSettings: fast),
        .executableTarget(name: "reflow-bench",
                          dependencies: ["NN", "Reporting", "Autograd", "TensorCore", "Models", "Flow", "Generation", "Formats",
                                         "ConfigKit", "Experiments", "ReflowCLI", .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          swiftSettings: fast),
        // Fuzz targets for the parsers of untrusted files (scripts/fuzz.sh builds it with
        // libFuzzer); the ordinary build is a tool that replays saved inputs.
        .executableTarget(name: "reflow-fuzz",
                          dependencies: ["Experiments", "Adapters", "ConfigKit", "Models", "NN", "Formats", "TripletStore", "TensorCore"],
                          swiftSettings: fast),

        // Helpers shared by the test targets (gradient check, seeded randn, PyTorch fixtures,
        // closeness and error assertions). A plain target, not a test target, so that test
        // targets can depend on it.
        .target(name: "TestSupport", dependencies: ["ConfigKit", "Formats", "Autograd", "TensorCore"], path: "Tests/TestSupport", swiftSettings: fast),

        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore"], swiftSettings: fast),
        .testTarget(name: "DistributedTests", dependencies: ["Distributed"], swiftSettings: fast),
        .testTarget(name: "AutogradTests", dependencies: ["Autograd", "Formats", "TensorCore", "TestSupport"],
                    resources: [.copy("Fixtures")], swiftSettings: fast),
        .testTarget(name: "FormatsTests", dependencies: ["Formats", "Autograd", "TensorCore", "TestSupport"], swiftSettings: fast),
        .testTarget(name: "TripletStoreTests", dependencies: ["TripletStore", "Formats", "TensorCore", "CHDF5", "TestSupport"], swiftSettings: fast),
        .testTarget(name: "DatasetsTests", dependencies: ["Datasets", "Formats", "TensorCore", "TestSupport"], swiftSettings: fast),
        .testTarget(name: "NNTests", dependencies: ["NN", "Formats", "Autograd", "TensorCore", "TestSupport"],
                    resources: [.copy("Fixtures")], swiftSettings: fast),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "NN", "Formats", "Autograd", "TensorCore", "TestSupport"], swiftSettings: fast),
        .testTarget(name: "AdaptersTests", dependencies: ["Adapters", "Models", "NN", "Formats", "Autograd", "TensorCore", "TestSupport"],
                    swiftSettings: fast),
        .testTarget(name: "FlowTests", dependencies: ["Flow", "Autograd", "TensorCore", "TestSupport"],
                    resources: [.copy("Fixtures")], swiftSettings: fast),
        .testTarget(name: "DiffusionTests", dependencies: ["Diffusion", "Flow", "Autograd", "TensorCore", "TestSupport"], swiftSettings: fast),
        .testTarget(name: "EvaluationTests", dependencies: ["Evaluation", "Formats", "Autograd", "TensorCore", "TestSupport"],
                    resources: [.copy("Fixtures")], swiftSettings: fast),
        .testTarget(name: "ControlTests",
                    dependencies: ["Control", "Finetuning", "Experiments", "Training", "Reporting", "Generation", "Flow", "Models", "NN", "Formats", "Autograd", "TensorCore", "TestSupport"],
                    swiftSettings: fast),
        .testTarget(name: "ConfigKitTests", dependencies: ["ConfigKit", "TestSupport"], swiftSettings: fast),
        .testTarget(name: "ServingTests",
                    dependencies: ["Serving", "Experiments", "Sampling", "Generation", "Models", "Reporting", "Flow", "Formats", "TestSupport",
                                   .product(name: "FlyingFox", package: "FlyingFox")],
                    swiftSettings: fast),
        .testTarget(name: "ReportingTests", dependencies: ["Reporting", "Formats", "TestSupport"], swiftSettings: fast),
        .testTarget(name: "RunReportTests", dependencies: ["RunReport", "Evaluation", "Reporting", "Formats", "Autograd", "TensorCore", "TestSupport"],
                    swiftSettings: fast),
        .testTarget(name: "ExperimentsTests",
                    dependencies: ["Experiments", "Finetuning", "Adapters", "RunReport", "Sampling", "Training", "Evaluation", "Generation", "Reporting", "ConfigKit", "Datasets",
                                   "TripletStore", "Formats", "Models", "NN", "Diffusion", "Flow", "Autograd", "TensorCore", "TestSupport"],
                    swiftSettings: fast),
    ],
    swiftLanguageModes: [.v5]
)
