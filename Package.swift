// swift-tools-version:6.0
// DiffusionFarm: a Stable Diffusion engine in Swift and a render farm around it.
// The module layout follows ARCHITECTURE.md: C shims at the bottom, the engine
// (Tensors, StableDiffusion, Imaging) knowing nothing of the farm, and the farm
// (FarmModel, ZeroMQ, Postgres, JobStore, Coordinator, Worker) on top.
import PackageDescription

let package = Package(
    name: "DiffusionFarm",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "farm", targets: ["farm"]),
        .executable(name: "tensors-bench", targets: ["tensors-bench"]),
        .executable(name: "jobstore-bench", targets: ["jobstore-bench"]),
        .executable(name: "dispatch-bench", targets: ["dispatch-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
    ],
    targets: [
        // C libraries, each behind a module map or a small C shim.
        .systemLibrary(name: "CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZeroMQ",
                       providers: [.apt(["libzmq3-dev"])]),
        .systemLibrary(name: "CPostgres", providers: [.apt(["libpq-dev"])]),
        .systemLibrary(name: "CSodium", pkgConfig: "libsodium", providers: [.apt(["libsodium-dev"])]),
        .target(name: "CPNG", linkerSettings: [.linkedLibrary("png16")]),
        // Vulkan compute through a loader opened at run time (dlopen): nothing new is linked, and the binary still
        // starts where there is no Vulkan. Builds with libvulkan-dev's headers.
        .target(name: "CVulkan", linkerSettings: [.linkedLibrary("dl")]),

        // The engine.
        .target(name: "CKernels", cSettings: [.unsafeFlags(["-O3"])]),
        .target(name: "Tensors", dependencies: ["CBLAS", "CKernels", "CVulkan"], exclude: ["Shaders"]),
        // A generation request: parameters, defaults, limits, the A1111 text; shared by the engine and the farm.
        .target(name: "Generation"),
        // Resources: the demo model (whose tokenizer/merges.txt is CLIP's BPE vocabulary) and CLIP's licence.
        .target(name: "StableDiffusion", dependencies: ["Tensors", "Generation"], resources: [.copy("Resources")]),
        .target(name: "Imaging", dependencies: ["CPNG"]),

        // The farm.
        .target(name: "FarmModel", dependencies: [
            "CSodium", "Generation",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "CoreMetrics", package: "swift-metrics"),
        ]),
        .target(name: "JobSpec", dependencies: ["FarmModel", "Generation", .product(name: "Yams", package: "Yams")]),
        .target(name: "ZeroMQ", dependencies: ["CZeroMQ"]),
        .target(name: "Postgres", dependencies: ["CPostgres"]),
        .target(name: "JobStore", dependencies: ["Postgres", "FarmModel"]),
        .target(name: "Coordinator", dependencies: ["JobStore", "ZeroMQ", "FarmModel", "Imaging",
                                                    .product(name: "CoreMetrics", package: "swift-metrics"),
                                                    .product(name: "Logging", package: "swift-log")]),
        .target(name: "Worker", dependencies: ["StableDiffusion", "Tensors", "Imaging", "ZeroMQ", "FarmModel",
                                               .product(name: "CoreMetrics", package: "swift-metrics"),
                                               .product(name: "Logging", package: "swift-log")]),
        .target(name: "HTTPAPI", dependencies: [
            "JobStore", "JobSpec", "FarmModel", "Postgres",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "CoreMetrics", package: "swift-metrics"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        .executableTarget(name: "farm", dependencies: [
            "Tensors", "Generation", "StableDiffusion", "Imaging", "FarmModel", "ZeroMQ", "Postgres",
            "JobStore", "Coordinator", "Worker", "JobSpec", "HTTPAPI",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "CoreMetrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "Yams", package: "Yams"),
            .product(name: "Logging", package: "swift-log"),
        ]),

        .executableTarget(name: "tensors-bench", dependencies: ["Tensors"]),
        .executableTarget(name: "jobstore-bench", dependencies: ["JobStore", "JobSpec", "TestSupport"]),
        .executableTarget(name: "dispatch-bench", dependencies: ["Coordinator", "Worker", "JobStore", "TestSupport", "ZeroMQ",
                                                                .product(name: "Logging", package: "swift-log")]),

        // Shared by tests only: a throwaway PostgreSQL server per test process.
        .target(name: "TestSupport", dependencies: ["Postgres"], path: "Tests/TestSupport"),

        .testTarget(name: "TensorsTests", dependencies: ["Tensors", "CKernels"], exclude: ["Fixtures"]),
        .testTarget(name: "StableDiffusionTests", dependencies: ["StableDiffusion", "Imaging", "TestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "ImagingTests", dependencies: ["Imaging"]),
        .testTarget(name: "FarmModelTests", dependencies: ["FarmModel", "Generation", "JobSpec", "TestSupport",
                                                         .product(name: "Logging", package: "swift-log")]),
        .testTarget(name: "FuzzTests", dependencies: ["FarmModel", "JobSpec", "Imaging"], exclude: ["Corpus"]),
        .testTarget(name: "ZeroMQTests", dependencies: ["ZeroMQ"]),
        .testTarget(name: "PostgresTests", dependencies: ["Postgres", "TestSupport"]),
        .testTarget(name: "JobStoreTests", dependencies: ["JobStore", "TestSupport"]),
        // The coordinator's and worker's protocol rules, driven without sockets or a database.
        .testTarget(name: "DaemonStateTests", dependencies: ["Coordinator", "Worker", "JobStore", "FarmModel", "Imaging"]),
        // The HTTP API's routes, driven in-process through HummingbirdTesting (no socket).
        .testTarget(name: "HTTPAPITests", dependencies: [
            "HTTPAPI", "JobStore", "TestSupport", "FarmModel", "Postgres",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdTesting", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
        ]),
        .testTarget(name: "FarmTests", dependencies: [
            "Coordinator", "Worker", "JobStore", "JobSpec", "FarmModel", "Generation", "TestSupport", "Imaging", "ZeroMQ", "StableDiffusion", "Tensors",
            .product(name: "Yams", package: "Yams"),
            .product(name: "Logging", package: "swift-log"),
        ]),
    ],
    swiftLanguageModes: [.v5]
)
