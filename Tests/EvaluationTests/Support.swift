import Foundation
import LoRACore

/// SmolLM2 from scripts/fetch-model (or $SWIFT_LORA_MODEL), loaded once per precision.
enum RealModel {
    static let path: String? = {
        let environment = ProcessInfo.processInfo.environment
        if let path = environment["SWIFT_LORA_MODEL"] { return path }
        let path = "\(environment["SWIFT_LORA_CACHE"] ?? "\(NSHomeDirectory())/.cache/swift-lora")/SmolLM2-135M-Instruct.Q4_1.gguf"
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }()

    static var available: Bool { path != nil }
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
