import Foundation

/// A PEFT adapter in the forms llama.cpp uses: folded into a model's weights (a merged
/// GGUF), or as a GGUF LoRA adapter file (llama.cpp's `--lora`).
extension PEFTAdapter {
    /// Each module's A [rank, in] and B [out, rank] under its GGUF tensor name, checked
    /// against the model's tensor shapes, with B's rows of q/k in the model's permuted order.
    func ggufPairs(for model: GGUFFile) throws(LoRAError) -> [(name: String, adapter: LoRAAdapter, b: Tensor)] {
        let config = try LlamaConfig(gguf: model)
        var pairs: [(String, LoRAAdapter, Tensor)] = []
        for (module, adapter) in modules.sorted(by: { $0.key < $1.key }) {
            guard let (layer, projection) = Projection.parse(modulePath: module),
                case let name = projection.ggufTensor(layer: layer), let info = model.tensor(named: name)
            else {
                throw .invalidMetadata(file: folder, key: module, problem: "\(model.path) has no tensor for this module")
            }
            guard info.shape == [adapter.outFeatures, adapter.inFeatures] else {
                throw .tensorShapeMismatch(
                    file: folder, tensor: module, expected: info.shape, actual: [adapter.outFeatures, adapter.inFeatures])
            }
            // a GGUF file's Q/K rows are in llama.cpp's adjacent-pair order, and lora_B's rows with them
            pairs.append((name, adapter, RoPELayout.adjacentPairs.outputRows(adapter.b, of: projection, headDim: config.headDim)))
        }
        return pairs
    }

    /// Writes this adapter as a GGUF LoRA adapter for `model`: `general.type =
    /// adapter`, `adapter.type = lora`, one `adapter.lora.alpha`, tensors
    /// `blk.N.attn_q.weight.lora_a/_b` in PEFT's own shapes. llama.cpp scales each pair by
    /// alpha / rank; where this adapter's scale differs (rsLoRA, rank or alpha patterns) the
    /// difference is folded into lora_b.
    public func writeGGUF(to path: String, for model: GGUFFile, type: GGUFWriter.TensorType = .f32) throws(LoRAError) {
        guard type != .q8_0 else {
            throw .invalidMetadata(file: path, key: "type", problem: "q8_0 needs rows of 32: lora_b rows are rank-long; use f32 or f16")
        }
        var writer = GGUFWriter()
        writer.set("general.architecture", .string(model["general.architecture"]?.stringValue ?? "llama"))
        writer.set("general.type", .string("adapter"))
        writer.set("adapter.type", .string("lora"))
        writer.set("adapter.lora.alpha", .float32(alpha))
        for (name, adapter, b) in try ggufPairs(for: model) {
            let fileScale = alpha / Float(adapter.rank)
            writer.add("\(name).lora_a", shape: adapter.a.shape, type: type) { adapter.a }
            writer.add("\(name).lora_b", shape: b.shape, type: type) {
                guard adapter.scale != fileScale else { return b }
                let folded = b.copy()
                Kernels.scale(folded, by: adapter.scale / fileScale)
                return folded
            }
        }
        try writer.write(to: path)
    }
}
