import Foundation
import LoRACore
import Testing

/// A tiny random Llama 2-style model in every form Llama 2 chat checkpoints ship in
/// (scripts/make-tiny-llama2-fixtures.py), against transformers' logits for each form's
/// stored weights: proves the Q/K layout and the names of both the GGUF and the Hugging
/// Face paths, and the SentencePiece tokenizers against sentencepiece, tokenizers and llama.cpp.
struct TinyLlama2Tests {
    struct Case: Decodable {
        let text: String
        let sentencepiece: [Int32]
        let huggingface: [Int32]
    }
    struct Chat: Decodable {
        let messages: [ChatMessage]
        let text: String
        let ids: [Int32]
    }
    struct Reference: Decodable {
        let ids: [Int32]
        let logits: [String: [[Double]]]
        let tokenizer: [Case]
        let chat: Chat
    }

    static let forms = [
        "hf-f32": "hf-f32", "hf-bf16": "hf-bf16", "hf-sharded": "hf-sharded",
        "gguf-f16": "tiny-llama2.f16.gguf", "gguf-q8_0": "tiny-llama2.q8_0.gguf",
    ]

    static func path(_ name: String) -> String { Fixtures.url("tiny-llama2/\(name)").path }
    static func reference() throws -> Reference { try Fixtures.json("tiny-llama2/reference.json", as: Reference.self) }

    @Test(arguments: ["hf-f32", "hf-bf16", "hf-sharded", "gguf-f16", "gguf-q8_0"])
    func logitsMatchTransformers(form: String) throws {
        let reference = try Self.reference()
        let expected = try #require(reference.logits[form])
        let model = try LanguageModel.load(path: Self.path(Self.forms[form]!), precision: .f32)
        #expect(model.model.config.numKeyValueHeads == 2 && !model.model.config.tieWordEmbeddings)
        let logits = try #require(model.model.forward(reference.ids))
        var worst = 0.0
        for (t, row) in expected.enumerated() {
            let got = logits.rows(t..<t + 1).scalars
            worst = max(worst, zip(got, row).map { abs(Double($0) - $1) }.max()!)
        }
        print("tiny Llama 2 \(form) f32 logits vs transformers: worst |diff| = \(worst)")
        #expect(worst <= 1e-4)

        // the int8 model stays near: its error is the weights' and activations' rounding
        let int8 = try LanguageModel.load(path: Self.path(Self.forms[form]!), precision: .int8)
        let quantized = try #require(int8.model.forward(reference.ids)).scalars
        let exact = logits.scalars
        let range = Double(exact.max()! - exact.min()!)
        let int8Worst = zip(quantized, exact).map { Double(abs($0 - $1)) }.max()! / range
        print("tiny Llama 2 \(form) int8 vs f32: worst |diff| / range = \(int8Worst)")
        #expect(int8Worst <= 0.03)
    }

    @Test func tokenizersMatchTheirReferences() throws {
        let reference = try Self.reference()
        // sentencepiece's own file and the GGUF follow sentencepiece (llama.cpp agrees);
        // tokenizer.json follows transformers' conversion
        let fromModel = try LanguageModel.load(path: Self.path("hf-f32")).tokenizer
        let fromGGUF = try LanguageModel.load(path: Self.path("tiny-llama2.q8_0.gguf")).tokenizer
        let fromJSON = try LanguageModel.load(path: Self.path("hf-sharded")).tokenizer
        #expect(fromModel is SentencePieceTokenizer && fromGGUF is SentencePieceTokenizer && fromJSON is SentencePieceTokenizer)
        for item in reference.tokenizer {
            #expect(fromModel.encode(item.text, parseSpecial: false, addBOS: false) == item.sentencepiece, "\(item.text.debugDescription)")
            #expect(fromGGUF.encode(item.text, parseSpecial: false, addBOS: false) == item.sentencepiece, "\(item.text.debugDescription)")
            #expect(fromJSON.encode(item.text, parseSpecial: true, addBOS: false) == item.huggingface, "\(item.text.debugDescription)")
            #expect(fromGGUF.decode(item.sentencepiece) == item.text)
        }
        for tokenizer in [fromModel, fromGGUF, fromJSON] {
            #expect(tokenizer.addsBOS && tokenizer.bosTokenID == 1 && tokenizer.eosTokenID == 2)
            #expect(tokenizer.encode("Hello", parseSpecial: false).first == 1)
        }
    }

    @Test func llama2ChatFormatMatchesTransformers() throws {
        let chat = try Self.reference().chat
        for form in ["hf-sharded", "tiny-llama2.f16.gguf", "hf-f32"] {
            let model = try LanguageModel.load(path: Self.path(form))
            #expect(model.chatTemplate == .llama2, "\(form)")
            #expect(model.chatTemplate?.render(chat.messages, addGenerationPrompt: false) == chat.text)
            if form == "hf-sharded" { #expect(model.encodeChat(chat.messages, addGenerationPrompt: false) == chat.ids) }
        }
    }

    @Test func huggingFaceErrorsNameTheFile() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("swift-lora-tests-\(getpid())/hf-broken")
        try? FileManager.default.removeItem(at: folder)
        try FileManager.default.copyItem(at: Fixtures.url("tiny-llama2/hf-sharded"), to: folder)
        let shard = folder.appendingPathComponent("model-00002-of-00005.safetensors")
        let bytes = try Data(contentsOf: shard)
        try bytes.prefix(bytes.count - 10).write(to: shard)
        #expect {
            _ = try LanguageModel.load(path: folder.path)
        } throws: { error in
            guard case .truncatedFile(let file, _, _) = error as? LoRAError else { return false }
            return file == shard.path
        }
        try FileManager.default.removeItem(at: shard)
        #expect(throws: LoRAError.self) { _ = try LanguageModel.load(path: folder.path) }
        var config = try String(contentsOf: folder.appendingPathComponent("config.json"), encoding: .utf8)
        config = config.replacingOccurrences(of: "\"llama\"", with: "\"mistral\"").replacingOccurrences(
            of: "LlamaForCausalLM", with: "MistralForCausalLM")
        try config.write(to: folder.appendingPathComponent("config.json"), atomically: true, encoding: .utf8)
        #expect(
            throws: LoRAError.unsupportedArchitecture(
                file: folder.appendingPathComponent("config.json").path, architecture: "MistralForCausalLM")
        ) {
            _ = try LanguageModel.load(path: folder.path)
        }
    }
}
