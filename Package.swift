// swift-tools-version:6.0
// Layerwise: layer-wise contrastive self-supervised learning of convolutional features.
import PackageDescription

/// The concern modules, in dependency order. Each ships as its own library product
/// and is re-exported by the `Layerwise` umbrella.
let concernModules = [
    "TensorCore", "Layers", "Optimizers", "Losses", "Augmentations",
    "Datasets", "PatchSamplers", "Figures", "Training", "Baselines", "Probes", "Experiments",
]

let package = Package(
    name: "Layerwise",
    products: [
        .library(name: "Layerwise", targets: ["Layerwise"]),
        .library(name: "LayerwiseTestSupport", targets: ["LayerwiseTestSupport"]),
        // Data-parallel training over MPI (Open MPI); the only product that needs MPI.
        .library(name: "LayerwiseMPI", targets: ["LayerwiseMPI"]),
        .executable(name: "reproduce-paper", targets: ["ReproducePaper"]),
        .executable(name: "quickstart", targets: ["Quickstart"]),
        .executable(name: "custom-components", targets: ["CustomComponents"]),
        .executable(name: "layerwise-bench", targets: ["LayerwiseBench"]),
        // Optional: PNG/JPEG folders through libpng and libjpeg-turbo (the core needs only OpenBLAS).
        .library(name: "LayerwiseImages", targets: ["LayerwiseImages"]),
        // TensorBoard event files from training events (pure Swift).
        .library(name: "LayerwiseTensorBoard", targets: ["LayerwiseTensorBoard"]),
        // The `layerwise` command-line tool (pretrain, features, probe, inspect, recipe).
        .executable(name: "layerwise", targets: ["LayerwiseTool"]),
    ] + concernModules.map { .library(name: $0, targets: [$0]) },
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.4.0"),
    ],
    targets: [
        // System library: OpenBLAS's CBLAS interface.
        .systemLibrary(
            name: "COpenBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"]), .brew(["openblas"])]
        ),

        // System library: Open MPI, for LayerwiseMPI only (the core never links it).
        .systemLibrary(
            name: "COpenMPI",
            pkgConfig: "ompi",
            providers: [.apt(["libopenmpi-dev", "openmpi-bin"]), .brew(["open-mpi"])]
        ),

        // The concerns, one job each.
        // Vector kernels in C, each with AVX-512, AVX2 and baseline versions picked at load time.
        .target(name: "CKernels"),
        .target(name: "TensorCore", dependencies: ["COpenBLAS", "CKernels"]),
        .target(name: "Layers", dependencies: ["TensorCore", "CKernels"]),
        .target(name: "Optimizers", dependencies: ["TensorCore", "Layers"]),
        .target(name: "Losses", dependencies: ["TensorCore"]),
        .target(name: "Augmentations", dependencies: ["TensorCore"]),
        .target(name: "Datasets", dependencies: ["TensorCore", "Augmentations"]),
        .target(name: "PatchSamplers", dependencies: ["TensorCore", "Augmentations", "Datasets"]),
        .target(name: "Figures", dependencies: ["TensorCore"]),
        .target(
            name: "Training",
            dependencies: [
                "TensorCore", "Layers", "Optimizers", "Losses", "Augmentations", "Datasets", "PatchSamplers",
            ]
        ),
        .target(name: "Baselines", dependencies: ["TensorCore", "Layers", "Datasets", "Training"]),
        .target(
            name: "Probes",
            dependencies: ["TensorCore", "Layers", "Optimizers", "Losses", "Augmentations", "Datasets", "Training"]),
        .target(
            name: "Experiments",
            dependencies: [
                "TensorCore", "Layers", "Optimizers", "Losses", "Augmentations", "Datasets", "Baselines", "Training",
            ]
        ),
        .target(name: "Layerwise", dependencies: concernModules.map { .target(name: $0) }),
        .target(name: "LayerwiseMPI", dependencies: ["COpenMPI", "Training"]),

        // Image folders (optional product): libpng and libjpeg-turbo behind a C shim that keeps
        // their longjmp error paths inside C.
        .systemLibrary(name: "CLibPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"]), .brew(["libpng"])]),
        .systemLibrary(
            name: "CLibJPEG", pkgConfig: "libjpeg", providers: [.apt(["libjpeg62-turbo-dev"]), .brew(["jpeg-turbo"])]),
        .target(name: "CImageCodecs", dependencies: ["CLibPNG", "CLibJPEG"]),
        .target(name: "LayerwiseImages", dependencies: ["TensorCore", "Datasets", "CImageCodecs"]),
        .target(name: "LayerwiseTensorBoard", dependencies: ["Layerwise"]),
        .target(
            name: "LayerwiseCLI",
            dependencies: [
                "Layerwise", "LayerwiseImages", "LayerwiseTensorBoard",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .executableTarget(name: "LayerwiseTool", dependencies: ["LayerwiseCLI", "Layerwise"]),

        // Test support: finite-difference gradient checks and fixtures, usable by anyone
        // who writes their own layer or loss.
        .target(name: "LayerwiseTestSupport", dependencies: ["TensorCore", "Layers", "Losses"]),

        // Examples.
        .executableTarget(
            name: "ReproducePaper",
            dependencies: [
                "Layerwise", "LayerwiseMPI", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            path: "Examples/ReproducePaper",
            resources: [.copy("Resources")]
        ),
        .executableTarget(name: "Quickstart", dependencies: ["Layerwise"], path: "Examples/Quickstart"),
        .executableTarget(name: "CustomComponents", dependencies: ["Layerwise"], path: "Examples/CustomComponents"),

        // Benchmarks (build with -c release).
        .executableTarget(
            name: "LayerwiseBench",
            dependencies: ["Layerwise", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Benchmarks/LayerwiseBench"
        ),

        // Tests mirror sources.
        .testTarget(name: "TensorCoreTests", dependencies: ["TensorCore", "LayerwiseTestSupport"]),
        .testTarget(name: "LayersTests", dependencies: ["Layers", "LayerwiseTestSupport"]),
        .testTarget(name: "OptimizersTests", dependencies: ["Optimizers", "LayerwiseTestSupport"]),
        .testTarget(name: "LossesTests", dependencies: ["Losses", "LayerwiseTestSupport"]),
        .testTarget(name: "AugmentationsTests", dependencies: ["Augmentations", "LayerwiseTestSupport"]),
        .testTarget(name: "DatasetsTests", dependencies: ["Datasets", "LayerwiseTestSupport"]),
        .testTarget(name: "PatchSamplersTests", dependencies: ["PatchSamplers", "LayerwiseTestSupport"]),
        .testTarget(name: "FiguresTests", dependencies: ["Figures", "Layerwise"]),
        .testTarget(name: "BaselinesTests", dependencies: ["Baselines", "Layerwise", "LayerwiseTestSupport"]),
        .testTarget(name: "TrainingTests", dependencies: ["Layerwise", "LayerwiseTestSupport"]),
        .testTarget(
            name: "LayerwiseImagesTests", dependencies: ["LayerwiseImages", "Layerwise", "LayerwiseTestSupport"]),
        .testTarget(
            name: "LayerwiseTensorBoardTests",
            dependencies: ["LayerwiseTensorBoard", "Layerwise", "LayerwiseTestSupport"]),
        .testTarget(name: "LayerwiseCLITests", dependencies: ["LayerwiseCLI", "LayerwiseImages", "Layerwise"]),
        .testTarget(name: "ProbesTests", dependencies: ["Probes", "Layerwise"]),
        .testTarget(name: "LayerwiseMPITests", dependencies: ["LayerwiseMPI", "Layerwise", "LayerwiseTestSupport"]),
        // Also runs the reproduce-paper command in process (@testable import ReproducePaper).
        .testTarget(
            name: "ExperimentsTests",
            dependencies: [
                "Layerwise", "LayerwiseTestSupport", "ReproducePaper",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
    ],
    swiftLanguageModes: [.v6]
)
