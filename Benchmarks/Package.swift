// swift-tools-version: 6.1
// Tally's allocation benchmarks (package-benchmark): a package of their own, depending on Tally by path, so that
// Tally's own build never resolves or builds package-benchmark. Run with scripts/alloc-check.
import PackageDescription

let package = Package(
    name: "TallyBenchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        // The MallocInterposer trait alone (malloc counts, no system package on Swift 6.3): the default traits add
        // RuntimeInterposer (ARC counts on 6.3), whose package swift-runtime-interposer the mirror does not hold.
        // A path dependency is named by `name:` here, whatever the clone's folder is called.
        .package(
            url: "https://github.com/ordo-one/benchmark.git", exact: "1.38.1", traits: ["MallocInterposer"]),
        .package(name: "tally", path: ".."),
    ],
    targets: [
        .executableTarget(
            name: "TallyAllocations",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "TallyCore", package: "tally"),
                .product(name: "TallyStore", package: "tally"),
            ],
            path: "Benchmarks/TallyAllocations",
            swiftSettings: [.enableUpcomingFeature("ExistentialAny")],
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        )
    ],
    swiftLanguageModes: [.v6]
)
