// swift-tools-version: 6.2
// 6.2 is the floor: from it on, SwiftPM accepts the OpenMP `unsafeFlags` below in a
// dependency pinned by version, so swift-lora stays usable as a versioned package.
import Foundation
import PackageDescription

// MARK: - OpenMP discovery
//
// The Swift toolchain's clang ships no omp.h, and Debian/Ubuntu put LLVM's libomp header
// and its unversioned libomp.so under an LLVM-versioned folder whose number differs per
// release. Look for them instead of naming one distribution's path; OPENMP_INCLUDE and
// OPENMP_LIB override the search. Without OpenMP the kernels build single-threaded.
struct OpenMP {
    let include: String
    let lib: String

    static func find() -> OpenMP? {
        let env = ProcessInfo.processInfo.environment
        if let include = env["OPENMP_INCLUDE"], let lib = env["OPENMP_LIB"] {
            return OpenMP(include: include, lib: lib)
        }
        let fm = FileManager.default
        let llvmRoots = ((try? fm.contentsOfDirectory(atPath: "/usr/lib")) ?? [])
            .filter { $0.hasPrefix("llvm-") }
            .sorted { (Int($0.dropFirst(5)) ?? 0) > (Int($1.dropFirst(5)) ?? 0) }
            .map { "/usr/lib/\($0)" }
        for root in llvmRoots where fm.fileExists(atPath: "\(root)/lib/libomp.so") {
            var headerDirs = ["\(root)/include/openmp", "\(root)/include"]
            let clangDir = "\(root)/lib/clang"
            for version in (try? fm.contentsOfDirectory(atPath: clangDir)) ?? [] {
                headerDirs.append("\(clangDir)/\(version)/include")
            }
            if let include = headerDirs.first(where: { fm.fileExists(atPath: "\($0)/omp.h") }) {
                return OpenMP(include: include, lib: "\(root)/lib")
            }
        }
        return nil
    }
}

let openMP = OpenMP.find()

// The kernels are always compiled optimized: at -O0 (a debug build) numeric tests on a
// real model crawl. SIMD code paths use per-function target attributes chosen at run
// time, never -march=native, so one binary runs on any x86-64.
var kernelCFlags = ["-O3", "-fno-math-errno"]
var kernelLinkerSettings: [LinkerSetting] = [.linkedLibrary("dl"), .linkedLibrary("m")]
if let omp = openMP {
    kernelCFlags += ["-fopenmp", "-I\(omp.include)"]
    kernelLinkerSettings += [.unsafeFlags(["-L\(omp.lib)"]), .linkedLibrary("omp")]
}

let package = Package(
    name: "swift-lora",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "LoRACore", targets: ["LoRACore"]),
        .library(name: "Evaluation", targets: ["Evaluation"]),
        .executable(name: "lora", targets: ["lora"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // `lora serve`'s HTTP server (the CLI only; the libraries do not depend on it).
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        // `swift package generate-documentation --target LoRACore` (and Evaluation) builds the
        // DocC catalogs; a plugin only, nothing is linked into the library.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // MARK: Library
        // C compute core: int8 blocks, fused GEMM/GEMV, Llama ops and their backward,
        // CPU dispatch. An implementation detail of LoRACore, not a product.
        .target(
            name: "CKernels",
            cSettings: [
                .unsafeFlags(kernelCFlags),
                .define("_GNU_SOURCE"),
            ],
            linkerSettings: kernelLinkerSettings
        ),
        // Tensors, quantized weights, loading, the model, LoRA, training.
        .target(name: "LoRACore", dependencies: ["CKernels"]),
        // Measurements on top of LoRACore's public API only.
        .target(name: "Evaluation", dependencies: ["LoRACore"]),

        // MARK: Tests (one per module)
        .testTarget(name: "CKernelsTests", dependencies: ["CKernels"]),
        // Fixtures: reference outputs of transformers/Jinja2 (scripts/make-*-fixtures.py).
        .testTarget(name: "LoRACoreTests", dependencies: ["LoRACore", "CKernels"], resources: [.copy("Fixtures")]),
        // Fixtures: transformers log-likelihoods (scripts/make-mc-fixtures.py).
        .testTarget(name: "EvaluationTests", dependencies: ["Evaluation", "LoRACore"], resources: [.copy("Fixtures")]),

        // MARK: Benchmarks (XCTest suites that print JSON lines; `make bench`)
        // The JSON-line reporter and environment every suite shares.
        .target(name: "BenchmarkSupport", path: "Benchmarks/BenchmarkSupport"),
        .testTarget(
            name: "KernelBenchmarks",
            dependencies: ["LoRACore", "CKernels", "BenchmarkSupport"],
            path: "Benchmarks/KernelBenchmarks"
        ),
        .testTarget(
            name: "InferenceBenchmarks",
            dependencies: ["LoRACore", "BenchmarkSupport"],
            path: "Benchmarks/InferenceBenchmarks"
        ),
        .testTarget(
            name: "TrainingBenchmarks",
            dependencies: ["LoRACore", "BenchmarkSupport"],
            path: "Benchmarks/TrainingBenchmarks"
        ),

        // MARK: Examples
        .executableTarget(
            name: "lora",
            dependencies: [
                "LoRACore",
                "Evaluation",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Examples/lora"
        ),
        .executableTarget(
            name: "gradient-sum",
            dependencies: ["LoRACore"],
            path: "Examples/gradient-sum"
        ),
        .executableTarget(
            name: "quantized-matmul",
            dependencies: ["LoRACore"],
            path: "Examples/quantized-matmul"
        ),
    ]
)
