import Foundation
import LoRACore
import Testing

/// PEFT adapters against PEFT's own logits (scripts/make-peft-fixtures.py), on the Hugging
/// Face layout and on the GGUF layout, whose Q/K rows are permuted.
struct PEFTAdapterTests {
    struct Reference: Decodable {
        let ids: [Int32]
        let logits: [String: [[Double]]]
    }

    static func worst(_ logits: Tensor, _ expected: [[Double]]) -> Double {
        expected.enumerated().map { t, row in
            zip(logits.rows(t..<t + 1).scalars, row).map { abs(Double($0) - $1) }.max()!
        }.max()!
    }

    @Test(arguments: [("hf-f32", "hf-f32"), ("tiny-llama2.f16.gguf", "gguf-f16")])
    func logitsMatchPEFT(checkpoint: String, form: String) throws {
        let reference = try Fixtures.json("tiny-llama2/adapter/reference.json", as: Reference.self)
        let adapter = try PEFTAdapter(folder: Fixtures.url("tiny-llama2/adapter").path)
        #expect(adapter.rank == 4 && adapter.alpha == 8 && adapter.modules.count == 14)
        #expect(adapter.modules["model.layers.1.mlp.down_proj"]?.rank == 2 && adapter.modules["model.layers.1.mlp.down_proj"]?.scale == 4)
        #expect(adapter.modules["model.layers.0.self_attn.o_proj"]?.scale == 1)

        let model = try LanguageModel.load(path: Fixtures.url("tiny-llama2/\(checkpoint)").path, precision: .f32)
        let base = try #require(model.model.forward(reference.ids))
        try model.model.attach(adapter)
        let adapted = try #require(model.model.forward(reference.ids))
        let error = Self.worst(adapted, try #require(reference.logits[form]))
        print("tiny Llama 2 \(form) + PEFT adapter vs PEFT: worst |diff| = \(error)")
        #expect(error <= 1e-4)
        #expect(Self.worst(base, reference.logits[form]!) > 100 * error) // the adapter does change the output
        model.model.detachAdapters()
        #expect(model.model.forward(reference.ids)!.scalars == base.scalars)

        // int8 base weights with the f32 adapter: within the int8 rounding of the base
        let int8 = try LanguageModel.load(path: Fixtures.url("tiny-llama2/\(checkpoint)").path, precision: .int8)
        try int8.model.attach(adapter)
        let quantized = try #require(int8.model.forward(reference.ids)).scalars
        let exact = adapted.scalars
        let range = Double(exact.max()! - exact.min()!)
        #expect(zip(quantized, exact).map { Double(abs($0 - $1)) }.max()! / range <= 0.03)
    }

    @Test func mismatchedAdaptersAreRefusedWithTheirFile() throws {
        let source = Fixtures.url("tiny-llama2/adapter")
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("swift-lora-tests-\(getpid())/adapter-bad")
        func variant(_ edit: (inout String) -> Void) throws -> String {
            try? FileManager.default.removeItem(at: folder)
            try FileManager.default.copyItem(at: source, to: folder)
            var config = try String(contentsOf: folder.appendingPathComponent("adapter_config.json"), encoding: .utf8)
            edit(&config)
            try config.write(to: folder.appendingPathComponent("adapter_config.json"), atomically: true, encoding: .utf8)
            return folder.path
        }
        let dora = try variant { $0 = $0.replacingOccurrences(of: "\"use_dora\": false", with: "\"use_dora\": true") }
        #expect(
            throws: LoRAError.invalidMetadata(
                file: "\(dora)/adapter_config.json", key: "use_dora", problem: "this setting is not supported")
        ) {
            _ = try PEFTAdapter(folder: dora)
        }
        let rank = try variant { $0 = $0.replacingOccurrences(of: "\"r\": 4", with: "\"r\": 3") }
        #expect { _ = try PEFTAdapter(folder: rank) } throws: { error in
            if case .tensorShapeMismatch(let file, _, _, _) = error as? LoRAError { return file.hasPrefix(rank) }
            return false
        }
        #expect(throws: LoRAError.self) { _ = try PEFTAdapter(folder: "/nonexistent-adapter") }
        // an adapter for another model's shapes: A of q_proj reads 63 inputs, the model has 64
        let other = try variant { _ in }
        try SafetensorsWriter.write(
            [
                "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": Tensor(zeros: [4, 63]),
                "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight": Tensor(zeros: [64, 4]),
            ], to: "\(other)/adapter_model.safetensors")
        let model = try LanguageModel.load(path: Fixtures.url("tiny-llama2/hf-f32").path, precision: .f32).model
        #expect(
            throws: LoRAError.tensorShapeMismatch(
                file: other, tensor: "model.layers.0.self_attn.q_proj", expected: [64, 64], actual: [64, 63])
        ) { try model.attach(PEFTAdapter(folder: other)) }
        // nothing was attached: a refused adapter leaves the model as it was
        #expect(model.layers.allSatisfy { layer in layer.projections.allSatisfy { $0.linear.adapter == nil } })
        // a module the model does not have
        let unknown = try variant { _ in }
        try SafetensorsWriter.write(
            [
                "base_model.model.model.layers.7.self_attn.q_proj.lora_A.weight": Tensor(zeros: [4, 64]),
                "base_model.model.model.layers.7.self_attn.q_proj.lora_B.weight": Tensor(zeros: [64, 4]),
            ], to: "\(unknown)/adapter_model.safetensors")
        #expect(
            throws: LoRAError.invalidMetadata(
                file: unknown, key: "model.layers.7.self_attn.q_proj", problem: "the model has no such projection")
        ) { try model.attach(PEFTAdapter(folder: unknown)) }
    }
}
