import Foundation
import LoRACore
import Testing

/// One LoRA training step on the real model against PyTorch + PEFT
/// (scripts/make-smollm2-lora-gradient-fixtures.py): the same adapter, the same two chat
/// examples (padded and masked there, side by side here), f32 weights. Each test loads its
/// own model: attaching adapters to RealModel's shared one would change the logits other
/// suites check at the same time.
@Suite(.serialized, .enabled(if: RealModel.available)) struct SmolLM2TrainingTests {
    struct Batch: Decodable {
        let sequences: [[Int32]]
        let labels: [[Int32]]
        let loss: Double
    }

    @Test func loraGradientsMatchPyTorchAndPEFT() throws {
        let batch = try Fixtures.json("smollm2-lora/batch.json", as: Batch.self)
        let model = try LanguageModel.load(path: RealModel.path!, precision: .f32).model
        try model.attach(PEFTAdapter(folder: Fixtures.url("smollm2-lora/adapter").path))
        // labels[t] is the token at t, learned or not: the target of position t - 1
        let targets: [Int32] = batch.labels.flatMap { labels in
            labels.indices.map { t in t + 1 < labels.count ? max(labels[t + 1], -1) : -1 }
        }
        let training = TrainingBatch(tokens: Array(batch.sequences.joined()), targets: targets, sequences: batch.sequences.map(\.count))
        let loss = model.accumulateGradients(training, lossScale: 1 / Float(training.countedTokens), recompute: false)
        print("SmolLM2 f32 LoRA step: loss \(loss.mean) vs PyTorch \(batch.loss)")
        #expect(abs(loss.mean - batch.loss) <= 1e-4 * batch.loss)

        let reference = try SafetensorsFile(path: Fixtures.url("smollm2-lora/gradients.safetensors").path)
        let ours = model.peftTensors(gradients: true)
        #expect(ours.count == reference.tensors.count && ours.count == 42)
        var worst = 0.0
        for (key, gradient) in ours {
            let name = String(key.dropFirst("base_model.model.".count).dropLast(".weight".count))
            let expected = try reference.values(of: name).scalars
            let got = gradient.scalars
            let difference = zip(got, expected).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }.squareRoot()
            let norm = expected.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
            #expect(norm > 0 && difference / norm <= 1e-3, "\(name): |ours − PyTorch| / |PyTorch| = \(difference / norm)")
            worst = max(worst, difference / norm)
        }
        print("SmolLM2 f32 LoRA gradients vs PyTorch + PEFT: worst |diff| / |ref| per tensor = \(worst)")
    }

    /// Saving writes back the adapter PEFT wrote: same keys, same values (Q/K rows of lora_B
    /// un-permuted from the GGUF order), a config PEFT's loader reads.
    @Test func savedAdapterRoundTripsPEFTsFiles() throws {
        let model = try LanguageModel.load(path: RealModel.path!, precision: .f32).model
        let original = try PEFTAdapter(folder: Fixtures.url("smollm2-lora/adapter").path)
        try model.attach(original)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("swift-lora-save-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try model.savePEFTAdapter(LoRAConfiguration(rank: 4, alpha: 8, layers: [0, 14, 29]), to: folder)
        let written = try SafetensorsFile(path: "\(folder)/adapter_model.safetensors")
        let source = try SafetensorsFile(path: Fixtures.url("smollm2-lora/adapter/adapter_model.safetensors").path)
        #expect(Set(written.tensors.keys) == Set(source.tensors.keys))
        for key in source.tensors.keys { #expect(try written.values(of: key).scalars == source.values(of: key).scalars, "\(key)") }
        let reloaded = try PEFTAdapter(folder: folder)
        #expect(reloaded.rank == 4 && reloaded.alpha == 8 && reloaded.modules.count == 21)
        let config =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: "\(folder)/adapter_config.json")))
            as? [String: Any]
        #expect(config?["peft_type"] as? String == "LORA" && config?["layers_to_transform"] as? [Int] == [0, 14, 29])
    }

    /// Adapters this library trained on the GGUF model (on the int8 base and on the file's
    /// own 4-bit blocks; permuted Q/K rows) and saved, loaded by PEFT onto the f32 model
    /// (`PeftModel.from_pretrained`, scripts/make-peft-interop-fixtures.py): PEFT's
    /// log-probabilities and ours with the same files agree, so the saved tensors mean in
    /// PEFT what they meant here.
    @Test(arguments: ["smollm2-trained-adapter", "smollm2-trained-adapter-q4"])
    func trainedAdapterMeansTheSameInPEFT(fixture: String) throws {
        struct Reference: Decodable {
            let ids: [Int32]
            let logprobs: [Float]
            let base_logprobs: [Float]
        }
        let reference = try Fixtures.json("\(fixture)/peft-logprobs.json", as: Reference.self)
        let model = try LanguageModel.load(path: RealModel.path!, precision: .f32).model
        func logprobs() throws -> [Float] {
            let logits = try #require(model.forward(reference.ids, logits: .all))
            return Kernels.logProbabilities(logits: logits.rows(0..<reference.ids.count - 1), targets: Array(reference.ids.dropFirst()))
        }
        let base = try logprobs()
        try model.attach(PEFTAdapter(folder: Fixtures.url(fixture).path))
        let adapted = try logprobs()
        let worstBase = zip(base, reference.base_logprobs).map { abs($0 - $1) }.max()!
        let worst = zip(adapted, reference.logprobs).map { abs($0 - $1) }.max()!
        let moved = zip(reference.logprobs, reference.base_logprobs).map { abs($0 - $1) }.max()!
        print(
            "\(fixture) in PEFT vs here: worst log-prob |diff| \(worst) (base \(worstBase)); the adapter moves them by up to \(moved)")
        #expect(moved > 1 && worst <= 2e-3 && worstBase <= 2e-3)
    }

    /// A config whose rank disagrees with the tensors is refused, naming the file and module.
    @Test func anAdapterWhoseConfigLiesAboutItsRankIsRefused() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("swift-lora-rank-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: folder) }
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let source = Fixtures.url("smollm2-trained-adapter")
        try FileManager.default.copyItem(
            at: source.appendingPathComponent("adapter_model.safetensors"),
            to: URL(fileURLWithPath: "\(folder)/adapter_model.safetensors"))
        var config =
            try JSONSerialization.jsonObject(with: Data(contentsOf: source.appendingPathComponent("adapter_config.json"))) as! [String: Any]
        config["r"] = 8
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: "\(folder)/adapter_config.json"))
        do {
            _ = try PEFTAdapter(folder: folder)
            Issue.record("a rank-4 adapter whose config says 8 was accepted")
        } catch {
            guard case .tensorShapeMismatch(let file, let tensor, let expected, _) = error else {
                Issue.record("\(error)")
                return
            }
            #expect(file == "\(folder)/adapter_model.safetensors" && tensor.hasPrefix("model.layers.") && expected == [8])
        }
    }
}
