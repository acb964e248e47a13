import Foundation
import LoRACore
import Testing

/// The tiny Llama 2 PEFT adapter (rank and alpha patterns) folded into the GGUF model, and
/// written as a GGUF LoRA adapter, against PEFT's own logits (scripts/make-peft-fixtures.py).
@Suite(.serialized) struct AdapterExportTests {
    static let source = Fixtures.url("tiny-llama2/tiny-llama2.f16.gguf").path
    static let adapterFolder = Fixtures.url("tiny-llama2/adapter").path

    static func scratch(_ name: String) -> String {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("swift-lora-export-\(getpid())")
        try? FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return folder.appendingPathComponent(name).path
    }

    /// Merged into f32 weights, the model alone gives PEFT's logits for base + adapter; every
    /// metadata entry and untouched tensor is the source's.
    @Test func mergedGGUFGivesPEFTsLogits() throws {
        let reference = try Fixtures.json("tiny-llama2/adapter/reference.json", as: PEFTAdapterTests.Reference.self)
        let source = try GGUFFile(path: Self.source)
        let adapter = try PEFTAdapter(folder: Self.adapterFolder)
        let path = Self.scratch("merged-f32.gguf")
        try MergedModel.writeGGUF(model: source, adapter: adapter, to: path, type: .f32)
        let merged = try GGUFFile(path: path)
        #expect(merged.metadata.map(\.key) == source.metadata.map(\.key).filter { $0 != "general.alignment" })
        for (key, value) in source.metadata where key != "general.alignment" { #expect(merged[key] == value, "\(key)") }
        #expect(try merged.values(of: "blk.0.attn_norm.weight").scalars == source.values(of: "blk.0.attn_norm.weight").scalars)
        #expect(
            merged.tensor(named: "blk.0.attn_q.weight")?.type == .f32
                && merged.tensor(named: "token_embd.weight")?.type == source.tensor(named: "token_embd.weight")?.type)

        let model = try LanguageModel.load(path: path, precision: .f32)
        let error = PEFTAdapterTests.worst(try #require(model.model.forward(reference.ids)), try #require(reference.logits["gguf-f16"]))
        print("tiny Llama 2 merged GGUF (f32) vs PEFT base + adapter: worst |diff| = \(error)")
        #expect(error <= 1e-4)
        #expect(
            model.tokenizer.encode("Hello world", parseSpecial: false, addBOS: nil)
                == (try LanguageModel.load(path: Self.source)).tokenizer.encode("Hello world", parseSpecial: false, addBOS: nil))

        // f16 and q8_0 merges load and stay within their own rounding
        for type in [GGUFWriter.TensorType.f16, .q8_0] {
            let rounded = Self.scratch("merged-\(type.rawValue).gguf")
            try MergedModel.writeGGUF(model: source, adapter: adapter, to: rounded, type: type)
            let logits = try #require(try LanguageModel.load(path: rounded, precision: .f32).model.forward(reference.ids))
            let roundedError = PEFTAdapterTests.worst(logits, reference.logits["gguf-f16"]!)
            print("tiny Llama 2 merged GGUF (\(type.rawValue)) vs PEFT: worst |diff| = \(roundedError)")
            #expect(roundedError <= (type == .f16 ? 1e-2 : 5e-2))
        }
    }

    /// The GGUF adapter file as llama.cpp's loader reads it (LoRACore.docc/AdapterFormats.md): its metadata,
    /// names and shapes, and its meaning: each weight plus alpha/r · lora_b·lora_a (r from
    /// lora_b, as llama.cpp takes it) equals the merged weight that gives PEFT's logits.
    @Test func ggufAdapterFileMeansWhatPEFTsAdapterMeans() throws {
        let source = try GGUFFile(path: Self.source)
        let adapter = try PEFTAdapter(folder: Self.adapterFolder)
        let path = Self.scratch("adapter.gguf")
        let mergedPath = Self.scratch("merged-for-adapter.gguf")
        try adapter.writeGGUF(to: path, for: source)
        try MergedModel.writeGGUF(model: source, adapter: adapter, to: mergedPath, type: .f32)
        let file = try GGUFFile(path: path)
        let merged = try GGUFFile(path: mergedPath)
        #expect(file["general.type"]?.stringValue == "adapter" && file["adapter.type"]?.stringValue == "lora")
        #expect(file["general.architecture"]?.stringValue == "llama" && file["adapter.lora.alpha"]?.floatValue == 8)
        #expect(
            file.tensors.count == 28
                && file.tensors.allSatisfy { $0.name.hasSuffix(".weight.lora_a") || $0.name.hasSuffix(".weight.lora_b") })
        let alpha = Float(file["adapter.lora.alpha"]!.floatValue!)
        var worst: Float = 0
        for info in file.tensors where info.name.hasSuffix(".lora_a") {
            let base = String(info.name.dropLast(".lora_a".count))
            let a = try file.values(of: info.name)
            let b = try file.values(of: base + ".lora_b")
            #expect(
                a.shape[0] == b.shape[1] && a.shape[1] == source.tensor(named: base)!.shape[1]
                    && b.shape[0] == source.tensor(named: base)!.shape[0])
            let weight = try source.values(of: base)
            Kernels.matmulAccumulate(b, a, transposeB: false, alpha: alpha / Float(b.shape[1]), into: weight)
            worst = max(worst, zip(weight.scalars, try merged.values(of: base).scalars).map { abs($0 - $1) }.max()!)
        }
        print("GGUF adapter: base + alpha/r·BA vs the merged weights: worst |diff| = \(worst)")
        #expect(worst <= 1e-5)
        #expect(throws: LoRAError.self) { try adapter.writeGGUF(to: Self.scratch("q8.gguf"), for: source, type: .q8_0) }
    }

    /// llama.cpp ran the files these functions write (scripts/make-llama-cpp-export-fixtures.py):
    /// the merged model alone, and the base with the GGUF adapter (`lora_path=`). Its logits
    /// and ours for the same files agree within llama.cpp's own f16 rounding, and both are
    /// far from the base's: llama.cpp reads our files and means by them what PEFT means.
    @Test func llamaCppReadsTheMergedModelAndTheAdapterAsWeDo() throws {
        struct Reference: Decodable {
            let ids: [Int32]
            let merged: [[Double]]
            let adapter: [[Double]]
            let base: [[Double]]
        }
        let reference = try Fixtures.json("tiny-llama2/llama-cpp-export.json", as: Reference.self)
        let source = try GGUFFile(path: Self.source)
        let adapter = try PEFTAdapter(folder: Self.adapterFolder)
        let path = Self.scratch("merged-llama-cpp.gguf")
        try MergedModel.writeGGUF(model: source, adapter: adapter, to: path, type: .f32)
        let merged = try #require(try LanguageModel.load(path: path, precision: .f32).model.forward(reference.ids))
        let model = try LanguageModel.load(path: Self.source, precision: .f32)
        try model.model.attach(adapter)
        let adapted = try #require(model.model.forward(reference.ids))
        let mergedError = PEFTAdapterTests.worst(merged, reference.merged)
        let adapterError = PEFTAdapterTests.worst(adapted, reference.adapter)
        let effect = PEFTAdapterTests.worst(adapted, reference.base)
        print("llama.cpp vs here: merged model \(mergedError), base + GGUF adapter \(adapterError); the adapter moves logits by \(effect)")
        #expect(mergedError <= 2e-3 && adapterError <= 2e-3 && effect > 100 * max(mergedError, adapterError))
    }

    /// A Hugging Face folder merged: PEFT's logits from the merged weights alone; shards,
    /// index and tokenizer files carried over; bf16 weights stay bf16 unless asked otherwise.
    @Test func mergedHuggingFaceFolderGivesPEFTsLogits() throws {
        let reference = try Fixtures.json("tiny-llama2/adapter/reference.json", as: PEFTAdapterTests.Reference.self)
        let adapter = try PEFTAdapter(folder: Self.adapterFolder)
        for source in ["hf-f32", "hf-sharded"] {
            let output = Self.scratch("merged-\(source)")
            try MergedModel.writeHuggingFace(folder: Fixtures.url("tiny-llama2/\(source)").path, adapter: adapter, to: output)
            let model = try LanguageModel.load(path: output, precision: .f32)
            let error = PEFTAdapterTests.worst(try #require(model.model.forward(reference.ids)), try #require(reference.logits["hf-f32"]))
            print("tiny Llama 2 merged \(source) folder vs PEFT base + adapter: worst |diff| = \(error)")
            #expect(error <= 1e-4)
            let sourceFiles = try FileManager.default.contentsOfDirectory(atPath: Fixtures.url("tiny-llama2/\(source)").path).sorted()
            #expect(try FileManager.default.contentsOfDirectory(atPath: output).sorted() == sourceFiles)
        }
        let bf16 = Self.scratch("merged-bf16")
        try MergedModel.writeHuggingFace(folder: Fixtures.url("tiny-llama2/hf-bf16").path, adapter: adapter, to: bf16)
        #expect(try SafetensorsFile(path: "\(bf16)/model.safetensors").tensors.values.allSatisfy { $0.dtype == "BF16" })
        let f16 = Self.scratch("merged-f16")
        try MergedModel.writeHuggingFace(folder: Fixtures.url("tiny-llama2/hf-f32").path, adapter: adapter, to: f16, type: .f16)
        let file = try SafetensorsFile(path: "\(f16)/model.safetensors")
        #expect(file.tensors["model.layers.0.self_attn.q_proj.weight"]?.dtype == "F16" && file.tensors["model.norm.weight"]?.dtype == "F32")
        let logits = try #require(try LanguageModel.load(path: f16, precision: .f32).model.forward(reference.ids))
        #expect(PEFTAdapterTests.worst(logits, reference.logits["hf-f32"]!) <= 1e-2)
    }

    /// An adapter for another model is refused before anything is written.
    @Test func anAdapterForAnotherModelIsRefused() throws {
        let smol = try GGUFFile(path: Self.source)
        let path = Self.scratch("never.gguf")
        let other = try PEFTAdapter(folder: Fixtures.url("smollm2-trained-adapter").path)
        #expect(throws: LoRAError.self) { try MergedModel.writeGGUF(model: smol, adapter: other, to: path) }
        #expect(!FileManager.default.fileExists(atPath: path))
    }
}
