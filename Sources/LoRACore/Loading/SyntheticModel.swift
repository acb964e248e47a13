import CKernels
import Foundation

/// A random-weight GGUF of any Llama config, written with `GGUFWriter`: a 7B or 70B shape
/// can be loaded, trained and timed before its real weights are downloaded. The weights are
/// random blocks of the chosen recipe (standard deviation about 0.02, as a fresh init), the
/// norms ones, and the tokenizer a SentencePiece vocabulary of the config's size (specials,
/// the 256 byte tokens, then letter pieces) that encodes any text by byte fallback; llama.cpp
/// loads the file as it loads any Llama GGUF.
public enum SyntheticModel {
    /// Which block types the matrices get.
    public enum Recipe: String, Sendable, CaseIterable {
        /// Q4_0 everywhere.
        case q4_0
        /// llama.cpp's Q4_K_M mix: Q4_K, with Q6_K for the output head and for attn_v and
        /// ffn_down in the layers llama.cpp gives more bits (the first and last eighth, and
        /// every third between).
        case q4_K_M = "q4_k_m"
        /// Q8_0 everywhere.
        case q8_0

        /// ggml's file-type id (general.file_type).
        var fileType: UInt32 {
            switch self {
            case .q4_0: 2
            case .q4_K_M: 15
            case .q8_0: 7
            }
        }

        /// The block type of `tensor` (a GGUF name) in layer `layer` of `layers`.
        func type(of tensor: String, layer: Int?, layers: Int) -> TensorDataType {
            switch self {
            case .q4_0: return .q4_0
            case .q8_0: return .q8_0
            case .q4_K_M:
                if tensor == "output.weight" { return .q6_K }
                guard let layer, tensor.hasSuffix("attn_v.weight") || tensor.hasSuffix("ffn_down.weight") else { return .q4_K }
                let moreBits = layer < layers / 8 || layer >= 7 * layers / 8 || (layer - layers / 8) % 3 == 2
                return moreBits ? .q6_K : .q4_K
            }
        }
    }

    /// Writes the model of `config` to `path` (atomically), reporting each tensor written.
    public static func write(
        config: LlamaConfig, recipe: Recipe, to path: String, seed: UInt64 = 0, progress: ((WorkProgress) -> Void)? = nil
    ) throws(LoRAError) {
        let vocabulary = try self.vocabulary(size: config.vocabSize, file: path)
        for (name, shape, layer) in tensors(config) where shape.count == 2 {
            let type = recipe.type(of: name, layer: layer, layers: config.numHiddenLayers)
            guard shape[1] % type.blockSize == 0 else {
                throw .invalidMetadata(
                    file: path, key: "config", problem: "\(name): rows of \(shape[1]) values do not split into \(type.rawValue) blocks")
            }
        }
        var writer = GGUFWriter()
        writer.set("general.architecture", .string("llama"))
        writer.set("general.name", .string("synthetic \(config.numHiddenLayers)-layer Llama (\(recipe.rawValue))"))
        writer.set("general.file_type", .uint32(recipe.fileType))
        writer.set("llama.vocab_size", .uint32(UInt32(config.vocabSize)))
        writer.set("llama.context_length", .uint32(UInt32(config.maxPositionEmbeddings)))
        writer.set("llama.embedding_length", .uint32(UInt32(config.hiddenSize)))
        writer.set("llama.block_count", .uint32(UInt32(config.numHiddenLayers)))
        writer.set("llama.feed_forward_length", .uint32(UInt32(config.intermediateSize)))
        writer.set("llama.attention.head_count", .uint32(UInt32(config.numAttentionHeads)))
        writer.set("llama.attention.head_count_kv", .uint32(UInt32(config.numKeyValueHeads)))
        writer.set("llama.attention.key_length", .uint32(UInt32(config.headDim)))
        writer.set("llama.attention.value_length", .uint32(UInt32(config.headDim)))
        writer.set("llama.rope.dimension_count", .uint32(UInt32(config.headDim)))
        writer.set("llama.rope.freq_base", .float32(config.ropeTheta))
        writer.set("llama.attention.layer_norm_rms_epsilon", .float32(config.rmsNormEps))
        writer.set("tokenizer.ggml.model", .string("llama"))
        writer.set("tokenizer.ggml.tokens", .strings(vocabulary.tokens))
        writer.set("tokenizer.ggml.scores", .float32s(vocabulary.scores))
        writer.set("tokenizer.ggml.token_type", .int32s(vocabulary.types))
        writer.set("tokenizer.ggml.unknown_token_id", .uint32(0))
        writer.set("tokenizer.ggml.bos_token_id", .uint32(1))
        writer.set("tokenizer.ggml.eos_token_id", .uint32(2))
        writer.set("tokenizer.ggml.add_bos_token", .bool(true))
        for (index, (name, shape, layer)) in tensors(config).enumerated() {
            if shape.count == 1 {
                writer.add(name, shape: shape, blocks: .f32) { ones(shape[0]) }
                continue
            }
            let type = recipe.type(of: name, layer: layer, layers: config.numHiddenLayers)
            let tensorSeed = seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(index)
            writer.add(name, shape: shape, blocks: type) { randomBlocks(type, rows: shape[0], cols: shape[1], seed: tensorSeed) }
        }
        try writer.write(to: path, progress: progress)
    }

    /// Every tensor of a Llama GGUF for `config`: name, shape [out, in] (or [n] for a norm), layer.
    static func tensors(_ config: LlamaConfig) -> [(name: String, shape: [Int], layer: Int?)] {
        let names = LlamaTensorNames.gguf
        var list: [(String, [Int], Int?)] = [(names.embedding, [config.vocabSize, config.hiddenSize], nil)]
        for layer in 0..<config.numHiddenLayers {
            list.append((names.attentionNorm(layer: layer), [config.hiddenSize], layer))
            for projection in Projection.allCases {
                let shape = projection.shape(config)
                list.append((names.projection(projection, layer: layer), [shape.outFeatures, shape.inFeatures], layer))
            }
            list.append((names.mlpNorm(layer: layer), [config.hiddenSize], layer))
        }
        list.append((names.norm, [config.hiddenSize], nil))
        if !config.tieWordEmbeddings { list.append((names.output, [config.vocabSize, config.hiddenSize], nil)) }
        return list
    }

    static func ones(_ count: Int) -> Data {
        [Float](repeating: 1, count: count).withUnsafeBytes { Data($0) }
    }

    /// `size` SentencePiece tokens: <unk>, <s>, </s>, the byte tokens <0x00>…<0xFF>, "▁"
    /// (the space, as every Llama vocabulary has it), letters and digits, then "▁a"…, "a"…,
    /// "▁aa"…, "aa"… (every piece reachable by merging shorter ones), scored so shorter
    /// pieces come first.
    static func vocabulary(size: Int, file: String) throws(LoRAError) -> (tokens: [String], scores: [Float], types: [Int32]) {
        let specials = ["<unk>", "<s>", "</s>"]
        let lower = (UInt8(ascii: "a")...UInt8(ascii: "z")).map { String(UnicodeScalar($0)) }
        let singles = ["▁"] + lower + (UInt8(ascii: "A")...UInt8(ascii: "Z")).map { String(UnicodeScalar($0)) } + (0...9).map(String.init)
        guard size >= specials.count + 256 + singles.count else {
            throw .invalidMetadata(file: file, key: "vocab_size", problem: "\(size) is too small for a byte-fallback vocabulary")
        }
        var tokens = specials + (0..<256).map { String(format: "<0x%02X>", $0) } + singles
        var words = lower
        while tokens.count < size {
            for word in words where tokens.count < size { tokens.append("▁" + word) }
            for word in words.filter({ $0.count > 1 }) where tokens.count < size { tokens.append(word) }
            words = words.flatMap { word in lower.map { word + $0 } }
        }
        let types: [Int32] = [2, 3, 3] + Array(repeating: 6, count: 256) + Array(repeating: 1, count: size - specials.count - 256)
        let scores = tokens.indices.map { $0 < specials.count + 256 ? Float(0) : -Float($0) }
        return (tokens, scores, types)
    }

    /// rows × ceil(cols / block) random GGUF blocks of `type` for weights of standard
    /// deviation about 0.02 and mean 0: random quants, scales set to match.
    static func randomBlocks(_ type: TensorDataType, rows: Int, cols: Int, seed: UInt64) -> Data {
        let blocks = rows * (cols / type.blockSize)
        var data = Data(count: blocks * type.blockBytes)
        var state = seed
        func next() -> UInt64 { // SplitMix64
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        let sigma: Float = 0.02
        data.withUnsafeMutableBytes { raw in
            let bytes = raw.bindMemory(to: UInt8.self)
            for i in stride(from: 0, to: bytes.count - 7, by: 8) { raw.storeBytes(of: next(), toByteOffset: i, as: UInt64.self) }
            for i in (bytes.count / 8 * 8)..<bytes.count { bytes[i] = UInt8(truncatingIfNeeded: next()) }
            func half(_ value: Float, at offset: Int) {
                raw.storeBytes(of: ck_float_to_half(value).littleEndian, toByteOffset: offset, as: UInt16.self)
            }
            for b in 0..<blocks {
                let base = b * type.blockBytes
                switch type {
                case .q8_0:
                    // −127…127 (ggml's quantizer never writes −128): standard deviation 73.6
                    half(sigma / 73.6, at: base)
                    for j in 2..<34 { bytes[base + j] = UInt8(bitPattern: Int8(Int(bytes[base + j]) % 255 - 127)) }
                case .q4_0:
                    half(sigma / 4.61, at: base) // q − 8, q uniform in 0…15: standard deviation 4.61
                case .q4_K:
                    // w = d·sc·q − dmin·m with m = sc and dmin = 7.5·d: d·sc·(q − 7.5), mean 0
                    let d = sigma / (4.61 * 40)
                    half(d, at: base)
                    half(7.5 * d, at: base + 2)
                    let sc = (0..<8).map { _ in UInt8(16 + next() % 48) }
                    for j in 0..<4 {
                        bytes[base + 4 + j] = sc[j] | (sc[j + 4] >> 4) << 6
                        bytes[base + 8 + j] = sc[j] | (sc[j + 4] >> 4) << 6
                        bytes[base + 12 + j] = (sc[j + 4] & 0x0F) | (sc[j + 4] & 0x0F) << 4
                    }
                case .q6_K:
                    // d·sc·(q − 32), q uniform in 0…63: standard deviation 18.5·d·sc
                    for j in 0..<16 { bytes[base + 192 + j] = UInt8(16 + next() % 48) }
                    half(sigma / (18.5 * 40), at: base + 208)
                default:
                    preconditionFailure("SyntheticModel: no random \(type.rawValue) blocks")
                }
            }
        }
        return data
    }
}
