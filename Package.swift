// swift-tools-version:6.0
import PackageDescription

// Release builds are the norm (tests included: `swift test -c release`): numeric loops in a
// debug build run 20-50x slower. `-target-cpu native` lets the elementwise kernels use AVX-512
// where the machine has it; the binary is built and run on the same machine (also in CI).
let fast: [SwiftSetting] = [
    .unsafeFlags(["-Ounchecked", "-target-cpu", "native"], .when(configuration: .release)),
]

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
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
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

        // Storage, shapes, kernels, threads, RNG. The only target that imports CBLAS.
        .target(name: "TensorCore", dependencies: ["CBLAS"], swiftSettings: fast),
        // The tape and every differentiable op (forward + pullback side by side).
        .target(name: "Autograd", dependencies: ["TensorCore"], swiftSettings: fast),
        // Modules, layers, models, optimizers, EMA, schedules, safetensors IO.
        .target(name: "NN", dependencies: ["Autograd", "TensorCore"], swiftSettings: fast),
        // The toolkit's networks: tokenizer, text encoder, velocity MLP and U-Net, evaluator
        // classifiers. Kept apart from NN so that NN stays a generic layer library.
        .target(name: "Models", dependencies: ["NN", "Autograd", "TensorCore"], swiftSettings: fast),
        // Rectified-flow losses, time samplers, ODE solvers, guidance, straightness.
        .target(name: "Flow", dependencies: ["NN", "Autograd", "TensorCore"], swiftSettings: fast),
        // HDF5 triplets, dataset readers, PNG.
        .target(name: "Data", dependencies: ["TensorCore", "CHDF5", "CPNG", "CZlib"], swiftSettings: fast),
        // Config decoding, run folders, progress, stage runners.
        .target(name: "Experiments",
                dependencies: ["Models", "NN", "Flow", "Data", "Autograd", "TensorCore",
                               .product(name: "Yams", package: "Yams")],
                swiftSettings: fast),

        // Command-line flags shared by the config-driven tools.
        .target(name: "ReflowCLI",
                dependencies: ["Experiments", .product(name: "ArgumentParser", package: "swift-argument-parser")],
                swiftSettings: fast),

        .executableTarget(name: "reflow-train",
                          dependencies: ["Experiments", "ReflowCLI", .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          swiftSettings: fast),
        .executableTarget(name: "reflow-sample",
                          dependencies: ["Experiments", .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          swiftSettings: fast),
        .executableTarget(name: "reflow-eval",
                          dependencies: ["Experiments", .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          swiftSettings: fast),
        .executableTarget(name: "reflow-gen-pairs",
                          dependencies: ["Experiments", "ReflowCLI", .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          swiftSettings: fast),
        .executableTarget(name: "reflow-distill",
                          dependencies: ["Experiments", "ReflowCLI", .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          swiftSettings: fast),
        .executableTarget(name: "reflow",
                          dependencies: ["Experiments", "ReflowCLI", .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          swiftSettings: fast),
        .executableTarget(name: "reflow-bench",
                          dependencies: ["NN", "Autograd", "TensorCore", .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          swiftSettings: fast),

        // Helpers shared by the test targets (gradient check, seeded randn, PyTorch fixtures).
        // A plain target, not a test target, so that test targets can depend on it.
        .target(name: "TestSupport", dependencies: ["Autograd", "TensorCore", "NN"], path: "Tests/TestSupport", swiftSettings: fast),

        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore"], swiftSettings: fast),
        .testTarget(name: "DataTests", dependencies: ["Data", "TensorCore"], swiftSettings: fast),
        .testTarget(name: "AutogradTests", dependencies: ["Autograd", "TensorCore", "NN", "TestSupport"],
                    resources: [.copy("Fixtures")], swiftSettings: fast),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "NN", "Autograd", "TensorCore"], swiftSettings: fast),
        .testTarget(name: "FlowTests", dependencies: ["Flow", "Autograd", "TensorCore", "TestSupport"], swiftSettings: fast),
        .testTarget(name: "NNTests", dependencies: ["NN", "Autograd", "TensorCore", "TestSupport"],
                    resources: [.copy("Fixtures")], swiftSettings: fast),
        .testTarget(name: "ExperimentsTests", dependencies: ["Experiments", "Data", "Models", "NN", "TensorCore"], swiftSettings: fast),
    ],
    swiftLanguageModes: [.v5]
)
