// swift-tools-version: 6.2
// Coverage-guided fuzz targets for every reader of outside input, built apart from the main
// package with libFuzzer (`scripts/fuzz`: -sanitize=fuzzer,address). Each target's main hands
// its input callback to libFuzzer's driver; one input is one file of the reader's kind, and
// any outcome but a crash, a sanitizer report or a hang is a pass.
import PackageDescription

let fuzzers = [
    "FuzzGGUF", "FuzzSafetensors", "FuzzTokenizerJSON", "FuzzTokenizerModel", "FuzzTrainingJSONL", "FuzzPromptCSV",
    "FuzzPromptJSONL", "FuzzMultipleChoiceCSV", "FuzzMultipleChoiceJSONL",
]

let package = Package(
    name: "swift-lora-fuzz",
    platforms: [.macOS(.v14)],
    dependencies: [.package(name: "swift-lora", path: "../..")],
    targets: [
        .target(name: "CFuzzer", path: "CFuzzer"),
        .target(name: "FuzzSupport", dependencies: ["CFuzzer", .product(name: "LoRACore", package: "swift-lora")], path: "FuzzSupport"),
    ]
        + fuzzers.map { name in
            .executableTarget(
                name: name,
                dependencies: [
                    "FuzzSupport", .product(name: "LoRACore", package: "swift-lora"), .product(name: "Evaluation", package: "swift-lora"),
                ],
                path: name)
        }
)
