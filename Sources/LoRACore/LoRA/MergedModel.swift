import Foundation

/// A model with an adapter folded into its weights: W' = W + scale · B·A.
public enum MergedModel {
    /// Writes `model` (GGUF) with `adapter` merged, as a GGUF llama.cpp and this library load
    /// without the adapter: every metadata entry (tokenizer, chat template) copied verbatim,
    /// untouched tensors copied byte for byte, each adapted weight dequantized to f32, merged
    /// and stored as `type`.
    public static func writeGGUF(
        model: GGUFFile, adapter: PEFTAdapter, to path: String, type: GGUFWriter.TensorType = .f16,
        progress: ((WorkProgress) -> Void)? = nil
    ) throws(LoRAError) {
        let pairs = Dictionary(uniqueKeysWithValues: try adapter.ggufPairs(for: model).map { ($0.name, ($0.adapter, $0.b)) })
        var writer = GGUFWriter()
        writer.copyMetadata(of: model)
        for info in model.tensors {
            guard let (lora, b) = pairs[info.name] else {
                try writer.copy(info.name, from: model)
                continue
            }
            guard info.shape[1] % type.stored.blockSize == 0 else {
                throw .invalidMetadata(
                    file: path, key: info.name, problem: "rows of \(info.shape[1]) values do not fill \(type.stored.rawValue) blocks")
            }
            writer.add(info.name, shape: info.shape, type: type) { () throws(LoRAError) -> Tensor in
                let weight = try model.values(of: info.name)
                Kernels.matmulAccumulate(b, lora.a, transposeB: false, alpha: lora.scale, into: weight)
                return weight
            }
        }
        try writer.write(to: path, progress: progress)
    }
}

extension MergedModel {
    /// How merged weights of a Hugging Face checkpoint are stored.
    public enum HuggingFaceType: String, Sendable, CaseIterable {
        /// Each weight in its own stored type (what PEFT's `merge_and_unload` gives).
        case auto
        case f32, f16, bf16

        func dtype(source: String) -> String {
            switch self {
            case .auto: source
            case .f32: "F32"
            case .f16: "F16"
            case .bf16: "BF16"
            }
        }
    }

    /// Writes a Hugging Face checkpoint folder with `adapter` merged: the same shards and
    /// index, every other file (config, tokenizer, chat template) copied, untouched tensors
    /// byte for byte, each adapted weight merged in f32 and stored as `type`.
    public static func writeHuggingFace(
        folder: String, adapter: PEFTAdapter, to output: String, type: HuggingFaceType = .auto,
        progress: ((WorkProgress) -> Void)? = nil
    ) throws(LoRAError) {
        let fileManager = FileManager.default
        guard fileManager.fileExists(atPath: "\(folder)/config.json") else {
            throw .unreadableFile(file: "\(folder)/config.json", reason: "not a Hugging Face checkpoint folder")
        }
        let names = ((try? fileManager.contentsOfDirectory(atPath: folder)) ?? []).sorted()
        let shards = try names.filter { $0.hasSuffix(".safetensors") }.map { name throws(LoRAError) in
            try SafetensorsFile(path: "\(folder)/\(name)")
        }
        var remaining = Set(adapter.modules.keys)
        var byShard: [(file: SafetensorsFile, entries: [SafetensorsWriter.Entry])] = []
        for shard in shards {
            var entries: [SafetensorsWriter.Entry] = []
            for (name, entry) in shard.tensors.sorted(by: { $0.key < $1.key }) {
                let module = String(name.dropLast(".weight".count))
                guard name.hasSuffix(".weight"), let lora = adapter.modules[module] else {
                    entries.append(
                        .init(name: name, dtype: entry.dtype, shape: entry.shape, byteCount: entry.byteRange.count) {
                            Data(shard.file.bytes[entry.byteRange])
                        })
                    continue
                }
                guard entry.shape == [lora.outFeatures, lora.inFeatures] else {
                    throw .tensorShapeMismatch(
                        file: adapter.folder, tensor: module, expected: entry.shape, actual: [lora.outFeatures, lora.inFeatures])
                }
                remaining.remove(module)
                let dtype = type.dtype(source: entry.dtype)
                guard let size = SafetensorsFile.elementSize(dtype), ["F32", "F16", "BF16"].contains(dtype) else {
                    throw .unsupportedTensorType(file: shard.path, tensor: name, type: dtype)
                }
                entries.append(
                    .init(name: name, dtype: dtype, shape: entry.shape, byteCount: size * entry.shape.reduce(1, *)) {
                        () throws(LoRAError) -> Data in
                        let weight = try shard.values(of: name)
                        Kernels.matmulAccumulate(lora.b, lora.a, transposeB: false, alpha: lora.scale, into: weight)
                        return SafetensorsWriter.encode(weight, dtype: dtype)
                    })
            }
            byShard.append((shard, entries))
        }
        if let missing = remaining.sorted().first {
            throw .invalidMetadata(file: adapter.folder, key: missing, problem: "\(folder) has no weight for this module")
        }
        do {
            try fileManager.createDirectory(atPath: output, withIntermediateDirectories: true)
        } catch {
            throw .unwritableFile(file: output, reason: error.localizedDescription)
        }
        let total = byShard.reduce(0) { $0 + $1.entries.count }
        var done = 0
        for (shard, entries) in byShard {
            try SafetensorsWriter.write(
                entries: entries, metadata: shard.metadata, to: "\(output)/\(URL(fileURLWithPath: shard.path).lastPathComponent)")
            done += entries.count
            progress?(WorkProgress(completed: done, total: total, unit: "tensors"))
        }
        for name in names where !name.hasSuffix(".safetensors") && !name.hasPrefix(".") {
            let source = "\(folder)/\(name)"
            var isDirectory: ObjCBool = false
            guard fileManager.fileExists(atPath: source, isDirectory: &isDirectory), !isDirectory.boolValue,
                var data = fileManager.contents(atPath: source)
            else { continue }
            if name == "model.safetensors.index.json", var index = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] {
                // the stored types may have changed: the total size with them
                let bytes = byShard.reduce(0) { $0 + $1.entries.reduce(0) { $0 + $1.byteCount } }
                var metadata = index["metadata"] as? [String: Any] ?? [:]
                metadata["total_size"] = bytes
                index["metadata"] = metadata
                data = (try? JSONSerialization.data(withJSONObject: index, options: [.prettyPrinted, .sortedKeys])) ?? data
            }
            try AtomicFile.write(data, to: "\(output)/\(name)")
        }
    }
}
