// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Cairn",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "cairn", targets: ["cairn"]),
        .library(name: "CairnCore", targets: ["CairnCore"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swhitty/FlyingFox", from: "0.27.1")  // its FlyingSocks
    ],
    targets: [
        // System libraries. zstd is linked; libpq and libcurl (headers from libpq-dev and libcurl4-openssl-dev)
        // are opened on first use, so that commands that need neither start without loading them and their
        // dozens of dependencies (half of the CPU of each `wal-push` that PostgreSQL starts).
        .systemLibrary(name: "CZstd", path: "Sources/CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .target(name: "CLazyLoad", path: "Sources/CLazyLoad"),
        .target(name: "CLibPQ", dependencies: ["CLazyLoad"], path: "Sources/CLibPQ"),
        .target(name: "CCurl", dependencies: ["CLazyLoad"], path: "Sources/CCurl"),

        // CRC-32C (SSE 4.2 where available) for PostgreSQL-format backup manifests.
        .target(name: "CCRC32C", path: "Sources/CCRC32C"),
        .target(name: "CXXHash", path: "Sources/CXXHash"),
        .target(name: "CFileSync", path: "Sources/CFileSync"),

        // Base: the error model (codes and exit codes), clocks, sizes and durations, threads for blocking work.
        .target(
            name: "CairnBase",
            dependencies: [
                .product(name: "Logging", package: "swift-log")
            ]),
        // Storage layer: the Repository protocol and its drivers (local folder, S3, in-memory).
        .target(
            name: "CairnStorage",
            dependencies: [
                "CairnBase", "CCurl",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log")
            ]),
        // PostgreSQL layer: libpq, WAL/LSN types, pg_* tool runners and parsers; the only place that spawns processes.
        .target(
            name: "CairnPostgres",
            dependencies: [
                "CairnBase", "CLibPQ",
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "Logging", package: "swift-log")
            ]),
        // Core: transfer pipeline, catalog, operations, policies.
        .target(
            name: "CairnCore",
            dependencies: [
                "CairnStorage", "CairnPostgres", "CZstd", "CCRC32C", "CXXHash", "CFileSync",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log")
            ]),
        // CLI: configuration loading, ArgumentParser commands, composition root.
        .target(
            name: "CairnCLI",
            dependencies: [
                "CairnCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "FlyingSocks", package: "FlyingFox"),
                .product(name: "Subprocess", package: "swift-subprocess")
            ]),
        .executableTarget(name: "cairn", dependencies: ["CairnCLI"]),

        .testTarget(name: "CairnBaseTests", dependencies: ["CairnBase", "TestSupport"]),
        .testTarget(
            name: "CairnStorageTests", dependencies: ["CairnStorage", "TestSupport"],
            resources: [.copy("Fixtures")]),
        .testTarget(name: "CairnPostgresTests", dependencies: ["CairnPostgres", "TestSupport"]),
        .testTarget(name: "CairnCoreTests", dependencies: ["CairnCore", "TestSupport"]),
        .testTarget(name: "CairnCLITests", dependencies: ["CairnCLI", "CairnCore", "TestSupport"]),
        // The tests above are unit tests: no services, `swift test --skip CairnIntegrationTests` runs them alone.
        // The integration tests need the services that `scripts/test-env.sh up` starts (PostgreSQL 15, moto S3 over
        // HTTP and TLS, SeaweedFS, PostgreSQL 18's programs for scratch clusters); without them they are skipped, and
        // with CAIRN_TEST_REQUIRE_SERVICES=1 (scripts/test.sh, CI) a missing service fails them. Folders mirror Sources.
        .testTarget(
            name: "CairnIntegrationTests",
            dependencies: ["CairnCLI", "CairnCore", "CairnStorage", "CairnPostgres", "TestSupport"]
        ),
        .target(name: "TestSupport", dependencies: ["CairnStorage", "CairnPostgres"], path: "Tests/TestSupport")
    ]
)
