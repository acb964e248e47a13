import Foundation
import LoRACore
import Testing

/// `lora synthesize`'s files: a GGUF of the config's shape in the recipe's block types that
/// this library loads at every precision, with a tokenizer of the config's vocabulary size
/// that encodes any text; the same seed gives the same file.
@Suite struct SyntheticModelTests {
    static func config(hidden: Int = 256, vocab: Int = 600) throws -> LlamaConfig {
        let json = """
            {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": \(hidden), "intermediate_size": 512,
             "num_hidden_layers": 8, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": \(vocab),
             "rms_norm_eps": 1e-5, "max_position_embeddings": 256, "tie_word_embeddings": false}
            """
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("swift-lora-synthetic-\(getpid())-\(hidden).json").path
        #expect(FileManager.default.createFile(atPath: path, contents: Data(json.utf8)))
        return try LlamaConfig(huggingFaceConfig: path)
    }

    static func file(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("swift-lora-synthetic-\(getpid())-\(name).gguf").path
    }

    @Test(arguments: SyntheticModel.Recipe.allCases)
    func aSynthesizedModelLoadsAndEncodesAnyText(recipe: SyntheticModel.Recipe) throws {
        let config = try Self.config()
        let path = Self.file(recipe.rawValue)
        try SyntheticModel.write(config: config, recipe: recipe, to: path, seed: 3)
        let q4 = try LanguageModel.load(path: path, precision: .q4)
        #expect(q4.model.config.hiddenSize == 256 && q4.model.config.numHiddenLayers == 8 && q4.model.config.vocabSize == 600)
        #expect(q4.tokenizer.vocabularySize == 600)
        // 7 matrices a layer and the two tables, each in the recipe's types, held as stored
        let expected: [String: Int] =
            switch recipe {
            case .q4_0: ["Q4_0 → Q4_0": 58]
            case .q8_0: ["Q8_0 → Q8_0": 58]
            // Q6_K: the head, and attn_v and ffn_down in layers 0, 3, 6 and 7 of 8
            case .q4_K_M: ["Q4_K → Q4_K": 49, "Q6_K → Q6_K": 9]
            }
        #expect(q4.summary.conversions.counts == expected)
        let text = "Hello, wörld ✓ 123 — ünïcödé"
        let ids = q4.tokenizer.encode(text, parseSpecial: false, addBOS: true)
        #expect(q4.tokenizer.decode(ids) == text)
        for precision in [WeightPrecision.q4, .int8] {
            let model = precision == .q4 ? q4 : try LanguageModel.load(path: path, precision: precision)
            // the plan from the file's tensor table alone is what the loader allocated
            let projected = try TrainingMemory(checkpoint: path, settings: TrainingSettings(), precision: precision)
            #expect(projected.baseWeights == model.model.byteCount, "\(precision)")
            let logits = try #require(model.model.forward(ids, logits: .last))
            #expect(logits.shape == [1, 600] && logits.nonFiniteCount == 0, "\(precision)")
        }
    }

    @Test func theSameSeedWritesTheSameFile() throws {
        let config = try Self.config()
        try SyntheticModel.write(config: config, recipe: .q4_K_M, to: Self.file("a"), seed: 9)
        try SyntheticModel.write(config: config, recipe: .q4_K_M, to: Self.file("b"), seed: 9)
        try SyntheticModel.write(config: config, recipe: .q4_K_M, to: Self.file("c"), seed: 10)
        let a = FileManager.default.contents(atPath: Self.file("a"))
        #expect(a != nil && a == FileManager.default.contents(atPath: Self.file("b")))
        #expect(a != FileManager.default.contents(atPath: Self.file("c")))
    }

    @Test func rowsThatDoNotSplitIntoKQuantBlocksAreAnError() throws {
        let config = try Self.config(hidden: 224)
        #expect(throws: LoRAError.self) { try SyntheticModel.write(config: config, recipe: .q4_K_M, to: Self.file("bad")) }
        #expect(!FileManager.default.fileExists(atPath: Self.file("bad")))
        try SyntheticModel.write(config: config, recipe: .q4_0, to: Self.file("q4-224"))
    }

    struct LlamaCppRecipe: Decodable {
        let checksum: String
        let ids: [Int32]
        let logits: [[Double]]
    }
    struct LlamaCppFixture: Decodable {
        let text: String
        let recipes: [String: LlamaCppRecipe]
    }

    static func fnv1a(_ data: Data) -> String {
        String(format: "%016llx", data.reduce(UInt64(0xCBF2_9CE4_8422_2325)) { ($0 ^ UInt64($1)) &* 0x100_0000_01B3 })
    }

    /// The file llama.cpp read (scripts/make-synthetic-llama-cpp-fixtures.py) is the file this
    /// library writes, byte for byte; both tokenize a text alike, and the logits agree to
    /// the distance the two quantized paths keep from each other.
    @Test(arguments: SyntheticModel.Recipe.allCases)
    func llamaCppReadsTheSameModel(recipe: SyntheticModel.Recipe) throws {
        let fixture = try Fixtures.json("synthetic-llama-cpp.json", as: LlamaCppFixture.self)
        let expected = try #require(fixture.recipes[recipe.rawValue])
        let config = try LlamaConfig(huggingFaceConfig: Fixtures.url("synthetic-tiny.config.json").path)
        let path = Self.file("llama-cpp-\(recipe.rawValue)")
        try SyntheticModel.write(config: config, recipe: recipe, to: path, seed: 1)
        #expect(Self.fnv1a(try Data(contentsOf: URL(fileURLWithPath: path))) == expected.checksum)
        let f32 = try LanguageModel.load(path: path, precision: .f32)
        let ids = f32.tokenizer.encode(fixture.text, parseSpecial: false, addBOS: true)
        #expect(ids == expected.ids)
        for precision in [WeightPrecision.f32, .q4] {
            let model = precision == .f32 ? f32 : try LanguageModel.load(path: path, precision: precision)
            let logits = try #require(model.model.forward(ids, logits: .all))
            var worst = 0.0
            for (offset, row) in expected.logits.enumerated() {
                let ours = logits.rows(ids.count - 8 + offset..<ids.count - 7 + offset).scalars.map(Double.init)
                let range = row.max()! - row.min()!
                worst = max(worst, zip(ours, row).map { abs($0 - $1) }.max()! / range)
            }
            print("synthetic \(recipe.rawValue): \(precision) logits vs llama.cpp, worst |diff| / range \(worst)")
            #expect(worst < 0.05, "\(recipe.rawValue) \(precision)")
        }
    }
}
