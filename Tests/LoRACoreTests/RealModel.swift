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

    /// The model is there to test with. When SWIFT_LORA_MODEL names it (as `make test` does)
    /// and the file is missing, the suites that need it are skipped and
    /// `RealModelPresenceTests` fails instead, naming the path.
    static var available: Bool { path.map { FileManager.default.fileExists(atPath: $0) } ?? false }

    static let int8: LanguageModel = try! LanguageModel.load(path: path!, precision: .int8)
    static let f32: LanguageModel = try! LanguageModel.load(path: path!, precision: .f32)
    /// The file's own Q4_1 blocks (and its Q8_0 embedding table) as stored.
    static let q4: LanguageModel = try! LanguageModel.load(path: path!, precision: .q4)
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

/// Fails when the environment names the real model and it is not there: without this, a
/// `make test` whose model went missing would pass with the model's suites skipped.
struct RealModelPresenceTests {
    @Test func theModelTheEnvironmentNamesExists() {
        guard let named = ProcessInfo.processInfo.environment["SWIFT_LORA_MODEL"] else { return }
        #expect(FileManager.default.fileExists(atPath: named), "SWIFT_LORA_MODEL=\(named) does not exist: run scripts/fetch-model")
    }
}
