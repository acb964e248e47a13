import Foundation
import LoRACore
import Testing

/// The real test model, SmolLM2-135M-Instruct (scripts/fetch-model). `make test` sets
/// SWIFT_LORA_MODEL, and then a missing file fails the tests; a bare `swift test` without
/// the fetched model skips them.
enum RealModel {
    static let path: String? = {
        let environment = ProcessInfo.processInfo.environment
        if let path = environment["SWIFT_LORA_MODEL"] { return path }
        let cache = environment["SWIFT_LORA_CACHE"] ?? "\(NSHomeDirectory())/.cache/swift-lora"
        let path = "\(cache)/SmolLM2-135M-Instruct.Q4_1.gguf"
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }()

    static var available: Bool { path != nil }

    static let int8: LanguageModel = try! LanguageModel.load(path: path!, precision: .int8)
    static let f32: LanguageModel = try! LanguageModel.load(path: path!, precision: .f32)
}

enum Fixtures {
    static func url(_ name: String) -> URL {
        Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: nil)!
    }

    static func json<T: Decodable>(_ name: String, as type: T.Type) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(contentsOf: url(name)))
    }

    static func text(_ name: String) throws -> String {
        try String(contentsOf: url(name), encoding: .utf8)
    }
}
