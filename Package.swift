// swift-tools-version:6.2
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "perfgate",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "perfgate", targets: ["perfgate"]),
        .library(name: "PerfgateClient", targets: ["PerfgateClient"]),
        .library(name: "PerfgateHummingbird", targets: ["PerfgateHummingbird"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        // Only the OTLP decode benchmark: perfgate's own decoder measured against generated code.
        .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
    ],
    targets: [
        // System libraries: the platform's SQLite and zlib, no vendored copies.
        .systemLibrary(
            name: "CSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]
        ),
        .systemLibrary(
            name: "CZlib",
            providers: [.apt(["zlib1g-dev"])]
        ),

        // The domain: events, validation, buckets, windows, quantiles, exposition. No I/O; NIOCore
        // only for `ByteBuffer`, so a /metrics page is written where the response sends it from.
        .target(
            name: "PerfgateCore",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),

        // Durable minute rollups: in SQLite on threads of the store's own (the embedded default), or
        // in PostgreSQL shared by several replicas; schemas from the top-level migrations/ folder.
        .target(
            name: "PerfgateStore",
            dependencies: [
                "PerfgateCore", "CSQLite",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings,
            plugins: ["EmbedMigrations"]
        ),

        // The HTTP service: routes, the write pipeline, background services.
        .target(
            name: "PerfgateServer",
            dependencies: [
                "PerfgateCore",
                "PerfgateStore",
                "CZlib",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),

        // Sending timings from Swift: the tracker, a batching sender, the HTTP API.
        .target(
            name: "PerfgateClient",
            dependencies: [
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),

        // One-line request tracking for Hummingbird applications.
        .target(
            name: "PerfgateHummingbird",
            dependencies: [
                "PerfgateClient",
                .product(name: "Hummingbird", package: "hummingbird"),
            ],
            swiftSettings: swiftSettings
        ),

        .executableTarget(
            name: "perfgate",
            dependencies: [
                "PerfgateServer",
                "PerfgateClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),

        // What one durable commit of the store costs, against an empty commit; see docs/benchmarks.md.
        .executableTarget(
            name: "store-commit-benchmark",
            dependencies: ["PerfgateStore"],
            path: "Benchmarks/StoreCommitBenchmark",
            swiftSettings: swiftSettings
        ),

        // Parse, aggregate and render costs of the core on one core, against Foundation's JSONDecoder.
        .executableTarget(
            name: "core-benchmark",
            dependencies: ["PerfgateCore", "AllocationCounter", .product(name: "NIOCore", package: "swift-nio")],
            path: "Benchmarks/CoreBenchmark",
            swiftSettings: swiftSettings
        ),

        // Counts the heap allocations of the benchmark that links it (glibc's allocator, interposed).
        .target(name: "AllocationCounter", path: "Benchmarks/AllocationCounter"),

        // Decoding an OTLP export: perfgate's decoder against swift-protobuf's generated code
        // (otlp_trace.pb.swift, generated once from otlp_trace.proto by protoc and protoc-gen-swift 1.39.0, and committed).
        .executableTarget(
            name: "otlp-decode-benchmark",
            dependencies: ["PerfgateCore", .product(name: "SwiftProtobuf", package: "swift-protobuf")],
            path: "Benchmarks/OTLPDecodeBenchmark",
            exclude: ["otlp_trace.proto"],
            swiftSettings: swiftSettings
        ),

        // Writes a store of a chosen number of rollup rows, for the start-up benchmark.
        .executableTarget(
            name: "store-fixture",
            dependencies: ["PerfgateStore"],
            path: "Benchmarks/StoreFixture",
            swiftSettings: swiftSettings
        ),

        // Build-time tool: compiles migrations/*.sql into the store so the binary runs from any directory.
        .executableTarget(name: "MigrationEmbedder"),
        .plugin(
            name: "EmbedMigrations",
            capability: .buildTool(),
            dependencies: ["MigrationEmbedder"]
        ),

        // What tests share and ingest never uses: an in-memory store with failures on demand, and
        // the event-by-event path the batch path is checked against.
        .target(
            name: "PerfgateTestSupport",
            dependencies: ["PerfgateCore"],
            path: "Tests/PerfgateTestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PerfgateCoreTests",
            dependencies: ["PerfgateCore", "PerfgateTestSupport", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PerfgateStoreTests",
            dependencies: ["PerfgateStore", .product(name: "PostgresNIO", package: "postgres-nio"), .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PerfgateServerTests",
            dependencies: [
                "PerfgateServer",
                "PerfgateClient",
                "PerfgateHummingbird",
                "PerfgateTestSupport",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
