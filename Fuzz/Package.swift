// swift-tools-version:6.0
// libFuzzer targets for Layerwise's file readers. Not part of the main package: they only
// build with `-sanitize=fuzzer` (no `main` of their own). Build and run them with
// `Scripts/fuzz.sh` (see Docs/Reliability.md).
import PackageDescription

let targets = ["FuzzSafeTensors", "FuzzNPY", "FuzzCIFAR", "FuzzCheckpoint"]

let package = Package(
    name: "LayerwiseFuzz",
    dependencies: [.package(name: "Layerwise", path: "..")],
    targets: [.target(name: "FuzzDriver")]
        + targets.map {
            .executableTarget(
                name: $0, dependencies: ["FuzzDriver", .product(name: "Layerwise", package: "Layerwise")])
        }
        + [
            .executableTarget(
                name: "FuzzImages",
                dependencies: ["FuzzDriver", .product(name: "LayerwiseImages", package: "Layerwise")])
        ],
    swiftLanguageModes: [.v6]
)
