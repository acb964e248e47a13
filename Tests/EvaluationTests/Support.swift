import Foundation
import LoRACore
import Testing

/// SmolLM2 from scripts/fetch-model (or $SWIFT_LORA_MODEL), loaded once per precision.
enum RealModel {
    static let path: String? = {
        let environment = ProcessInfo.processInfo.environment
        if let path = environment["SWIFT_LORA_MODEL"] { return path }
        let path = "\(environment["SWIFT_LORA_CACHE"] ?? "\(NSHomeDirectory())/.cache/swift-lora")/SmolLM2-135M-Instruct.Q4_1.gguf"
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }()

    /// The model is there to test with. When SWIFT_LORA_MODEL names it (as `make test` does)
    /// and the file is missing, the suites that need it are skipped and
    /// `RealModelPresenceTests` fails instead, naming the path.
    static var available: Bool { path.map { FileManager.default.fileExists(atPath: $0) } ?? false }
    static let int8: LanguageModel = try! LanguageModel.load(path: path!, precision: .int8)
    static let f32: LanguageModel = try! LanguageModel.load(path: path!, precision: .f32)
}

/// A fresh temporary folder, and files written into it.
struct Scratch {
    let folder: String

    init() {
        folder = NSTemporaryDirectory() + "swift-lora-eval-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    }

    func file(_ name: String, _ contents: String) -> String {
        let path = "\(folder)/\(name)"
        try! FileManager.default.createDirectory(
            atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path, withIntermediateDirectories: true)
        try! Data(contents.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    func file(_ name: String, bytes: [UInt8]) -> String {
        let path = "\(folder)/\(name)"
        try! Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }
}

/// The repository's shipped example data.
func exampleData(_ name: String) -> String {
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../Examples/data/\(name)").standardized.path
}

/// Fails when the environment names the real model and it is not there: without this, a
/// `make test` whose model went missing would pass with the model's suites skipped.
struct RealModelPresenceTests {
    @Test func theModelTheEnvironmentNamesExists() {
        guard let named = ProcessInfo.processInfo.environment["SWIFT_LORA_MODEL"] else { return }
        #expect(FileManager.default.fileExists(atPath: named), "SWIFT_LORA_MODEL=\(named) does not exist: run scripts/fetch-model")
    }
}
