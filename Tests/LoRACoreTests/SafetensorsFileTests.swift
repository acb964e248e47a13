import Foundation
import LoRACore
import Testing

struct SafetensorsFileTests {
    @Test func readsTheHeaderAndValues() throws {
        let file = try SafetensorsFile(path: Fixtures.url("tiny-llama2/hf-bf16/model.safetensors").path)
        let embed = try #require(file.tensors["model.embed_tokens.weight"])
        #expect(embed.dtype == "BF16" && embed.shape == [400, 64])
        #expect(file.metadata["format"] == "pt")
        let values = try file.values(of: "model.norm.weight")
        #expect(values.shape == [64] && values.scalars.allSatisfy { $0.isFinite && abs($0) < 4 })
    }

    /// Mutated copies of a checkpoint folder's weights (truncations, flipped header bytes,
    /// huge header lengths): each load succeeds or throws a LoRAError, never crashes.
    @Test func mutatedFilesNeverCrashTheReader() throws {
        let source = Fixtures.url("tiny-llama2/hf-f32")
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("swift-lora-tests-\(getpid())/st-fuzz")
        try? FileManager.default.removeItem(at: folder)
        try FileManager.default.copyItem(at: source, to: folder)
        let weights = folder.appendingPathComponent("model.safetensors")
        let good = try Data(contentsOf: weights)
        let headerEnd = 8 + Int(good.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        var rng = SeededGenerator(seed: 7)
        var outcomes: [String: Int] = [:]
        for round in 0..<1500 {
            var data = good
            switch round % 3 {
            case 0:
                data = data.prefix(Int.random(in: 0..<data.count, using: &rng))
            case 1:
                for _ in 0..<Int.random(in: 1...6, using: &rng) {
                    data[Int.random(in: 0..<headerEnd, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
            default:
                let huge: UInt64 = [UInt64.max, 1 << 40, 100_000_000, UInt64(good.count)].randomElement(using: &rng)!
                withUnsafeBytes(of: huge.littleEndian) { data.replaceSubrange(0..<8, with: $0) }
            }
            try data.write(to: weights)
            do {
                _ = try LanguageModel.load(path: folder.path, precision: .int8)
                outcomes["loaded", default: 0] += 1
            } catch {
                outcomes[String("\(error)".split(separator: ":").dropFirst().first ?? "?"), default: 0] += 1
            }
        }
        print("safetensors fuzz outcomes: \(outcomes.sorted { $0.value > $1.value }.prefix(8))")
        #expect(outcomes.values.reduce(0, +) == 1500 && outcomes["loaded", default: 0] < 1500)
    }

    /// The same for sentencepiece's protobuf `tokenizer.model`.
    @Test func mutatedSentencePieceModelsNeverCrash() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("swift-lora-tests-\(getpid())/spm-fuzz")
        try? FileManager.default.removeItem(at: folder)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let good = try Data(contentsOf: Fixtures.url("tiny-llama2/hf-f32/tokenizer.model"))
        let path = folder.appendingPathComponent("tokenizer.model")
        var rng = SeededGenerator(seed: 11)
        var loaded = 0
        for round in 0..<1000 {
            var data = good
            if round % 2 == 0 {
                data = data.prefix(Int.random(in: 0..<data.count, using: &rng))
            } else {
                for _ in 0..<Int.random(in: 1...6, using: &rng) {
                    data[Int.random(in: 0..<data.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
            }
            try data.write(to: path)
            if let tokenizer = try? makeTokenizer(huggingFaceFolder: folder.path) {
                _ = tokenizer.encode("Hello wörld 😀", parseSpecial: true, addBOS: nil)
                loaded += 1
            }
        }
        #expect(loaded < 1000)
    }
}
