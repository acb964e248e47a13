import Foundation

/// The shape of a Llama-family model, with Hugging Face's `config.json` names so a
/// checkpoint's configuration decodes as is. GGUF files fill it from their `llama.*` keys.
public struct LlamaConfig: Codable, Sendable, Equatable {
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int
    public var numKeyValueHeads: Int
    public var headDim: Int
    public var vocabSize: Int
    public var rmsNormEps: Float
    public var ropeTheta: Float
    public var ropeScaling: RoPEScaling?
    public var tieWordEmbeddings: Bool
    public var maxPositionEmbeddings: Int

    /// Rotary-embedding rescaling for long contexts (`rope_scaling` in config.json).
    public struct RoPEScaling: Codable, Sendable, Equatable {
        /// "linear" or "llama3" (Llama 3.1); "default" means none.
        public var ropeType: String
        public var factor: Float
        public var lowFreqFactor: Float?
        public var highFreqFactor: Float?
        public var originalMaxPositionEmbeddings: Int?

        public init(
            ropeType: String, factor: Float, lowFreqFactor: Float? = nil, highFreqFactor: Float? = nil,
            originalMaxPositionEmbeddings: Int? = nil
        ) {
            self.ropeType = ropeType
            self.factor = factor
            self.lowFreqFactor = lowFreqFactor
            self.highFreqFactor = highFreqFactor
            self.originalMaxPositionEmbeddings = originalMaxPositionEmbeddings
        }

        enum CodingKeys: String, CodingKey {
            case ropeType = "rope_type"
            case type, factor
            case lowFreqFactor = "low_freq_factor"
            case highFreqFactor = "high_freq_factor"
            case originalMaxPositionEmbeddings = "original_max_position_embeddings"
        }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            // older configs say "type", newer "rope_type"
            ropeType = try c.decodeIfPresent(String.self, forKey: .ropeType) ?? c.decode(String.self, forKey: .type)
            factor = try c.decodeIfPresent(Float.self, forKey: .factor) ?? 1
            lowFreqFactor = try c.decodeIfPresent(Float.self, forKey: .lowFreqFactor)
            highFreqFactor = try c.decodeIfPresent(Float.self, forKey: .highFreqFactor)
            originalMaxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .originalMaxPositionEmbeddings)
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(ropeType, forKey: .ropeType)
            try c.encode(factor, forKey: .factor)
            try c.encodeIfPresent(lowFreqFactor, forKey: .lowFreqFactor)
            try c.encodeIfPresent(highFreqFactor, forKey: .highFreqFactor)
            try c.encodeIfPresent(originalMaxPositionEmbeddings, forKey: .originalMaxPositionEmbeddings)
        }
    }

    enum CodingKeys: String, CodingKey {
        case hiddenSize = "hidden_size"
        case intermediateSize = "intermediate_size"
        case numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads"
        case numKeyValueHeads = "num_key_value_heads"
        case headDim = "head_dim"
        case vocabSize = "vocab_size"
        case rmsNormEps = "rms_norm_eps"
        case ropeTheta = "rope_theta"
        case ropeScaling = "rope_scaling"
        case tieWordEmbeddings = "tie_word_embeddings"
        case maxPositionEmbeddings = "max_position_embeddings"
        case ropeParameters = "rope_parameters"
    }

    /// transformers 5 moves `rope_theta` and the scaling fields into `rope_parameters`.
    struct RoPEParameters: Decodable {
        let ropeTheta: Float?
        let ropeType: String?
        enum CodingKeys: String, CodingKey {
            case ropeTheta = "rope_theta"
            case ropeType = "rope_type"
        }
    }

    public init(
        hiddenSize: Int, intermediateSize: Int, numHiddenLayers: Int, numAttentionHeads: Int,
        numKeyValueHeads: Int? = nil, headDim: Int? = nil, vocabSize: Int, rmsNormEps: Float = 1e-6,
        ropeTheta: Float = 10_000, ropeScaling: RoPEScaling? = nil, tieWordEmbeddings: Bool = false,
        maxPositionEmbeddings: Int = 2048
    ) {
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.numKeyValueHeads = numKeyValueHeads ?? numAttentionHeads
        self.headDim = headDim ?? (numAttentionHeads > 0 ? hiddenSize / numAttentionHeads : 0)
        self.vocabSize = vocabSize
        self.rmsNormEps = rmsNormEps
        self.ropeTheta = ropeTheta
        self.ropeScaling = ropeScaling
        self.tieWordEmbeddings = tieWordEmbeddings
        self.maxPositionEmbeddings = maxPositionEmbeddings
    }

    /// transformers' defaults for the optional fields of a Llama config.json.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let heads = try c.decode(Int.self, forKey: .numAttentionHeads)
        let hidden = try c.decode(Int.self, forKey: .hiddenSize)
        let parameters = try c.decodeIfPresent(RoPEParameters.self, forKey: .ropeParameters)
        var scaling = try c.decodeIfPresent(RoPEScaling.self, forKey: .ropeScaling)
        if scaling == nil, let type = parameters?.ropeType, type != "default" {
            scaling = try c.decode(RoPEScaling.self, forKey: .ropeParameters)
        }
        self.init(
            hiddenSize: hidden,
            intermediateSize: try c.decode(Int.self, forKey: .intermediateSize),
            numHiddenLayers: try c.decode(Int.self, forKey: .numHiddenLayers),
            numAttentionHeads: heads,
            numKeyValueHeads: try c.decodeIfPresent(Int.self, forKey: .numKeyValueHeads),
            headDim: try c.decodeIfPresent(Int.self, forKey: .headDim),
            vocabSize: try c.decode(Int.self, forKey: .vocabSize),
            rmsNormEps: try c.decodeIfPresent(Float.self, forKey: .rmsNormEps) ?? 1e-6,
            ropeTheta: try c.decodeIfPresent(Float.self, forKey: .ropeTheta) ?? parameters?.ropeTheta ?? 10_000,
            ropeScaling: scaling?.ropeType == "default" ? nil : scaling,
            tieWordEmbeddings: try c.decodeIfPresent(Bool.self, forKey: .tieWordEmbeddings) ?? false,
            maxPositionEmbeddings: try c.decodeIfPresent(Int.self, forKey: .maxPositionEmbeddings) ?? 2048)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(hiddenSize, forKey: .hiddenSize)
        try c.encode(intermediateSize, forKey: .intermediateSize)
        try c.encode(numHiddenLayers, forKey: .numHiddenLayers)
        try c.encode(numAttentionHeads, forKey: .numAttentionHeads)
        try c.encode(numKeyValueHeads, forKey: .numKeyValueHeads)
        try c.encode(headDim, forKey: .headDim)
        try c.encode(vocabSize, forKey: .vocabSize)
        try c.encode(rmsNormEps, forKey: .rmsNormEps)
        try c.encode(ropeTheta, forKey: .ropeTheta)
        try c.encodeIfPresent(ropeScaling, forKey: .ropeScaling)
        try c.encode(tieWordEmbeddings, forKey: .tieWordEmbeddings)
        try c.encode(maxPositionEmbeddings, forKey: .maxPositionEmbeddings)
    }

    /// The widths of the query and of the key/value projections.
    public var queryWidth: Int { numAttentionHeads * headDim }
    public var keyValueWidth: Int { numKeyValueHeads * headDim }

    /// Checks what the forward pass relies on; `file` names the checkpoint in the error.
    public func validate(file: String) throws(LoRAError) {
        func require(_ ok: Bool, _ key: String, _ problem: String) throws(LoRAError) {
            if !ok { throw .invalidMetadata(file: file, key: key, problem: problem) }
        }
        let limit = 1 << 20
        try require((1...limit).contains(hiddenSize), "hidden_size", "\(hiddenSize) is not a usable width")
        try require((1...limit).contains(intermediateSize), "intermediate_size", "\(intermediateSize) is not a usable width")
        try require((1...4096).contains(numHiddenLayers), "num_hidden_layers", "\(numHiddenLayers) layers")
        try require((1...4096).contains(numAttentionHeads), "num_attention_heads", "\(numAttentionHeads) heads")
        try require(
            (1...numAttentionHeads).contains(numKeyValueHeads) && numAttentionHeads % numKeyValueHeads == 0,
            "num_key_value_heads", "\(numKeyValueHeads) does not divide \(numAttentionHeads) attention heads")
        try require((2...limit).contains(headDim) && headDim % 2 == 0, "head_dim", "\(headDim) is not an even head size")
        try require((1...(1 << 24)).contains(vocabSize), "vocab_size", "\(vocabSize) tokens")
        try require(rmsNormEps > 0 && rmsNormEps < 1, "rms_norm_eps", "\(rmsNormEps) is not a small positive number")
        try require(ropeTheta > 1 && ropeTheta.isFinite, "rope_theta", "\(ropeTheta)")
        try require(maxPositionEmbeddings > 0, "max_position_embeddings", "\(maxPositionEmbeddings)")
        if let scaling = ropeScaling {
            try require(
                ["linear", "llama3"].contains(scaling.ropeType), "rope_scaling",
                "type \(scaling.ropeType) is not supported (linear, llama3 are)")
            try require(scaling.factor > 0 && scaling.factor.isFinite, "rope_scaling.factor", "\(scaling.factor)")
            if scaling.ropeType == "llama3" {
                try require(
                    scaling.lowFreqFactor != nil && scaling.highFreqFactor != nil
                        && scaling.originalMaxPositionEmbeddings != nil && scaling.highFreqFactor != scaling.lowFreqFactor,
                    "rope_scaling", "llama3 scaling needs low_freq_factor, high_freq_factor and original_max_position_embeddings")
            }
        }
    }

    /// The per-pair RoPE frequencies, rescaled as transformers' rope_init_fns do.
    public func ropeFrequencies() -> [Float] {
        let base = Kernels.ropeFrequencies(theta: ropeTheta, rotaryDims: headDim)
        guard let scaling = ropeScaling else { return base }
        switch scaling.ropeType {
        case "linear":
            return base.map { $0 / scaling.factor }
        case "llama3":
            let low = scaling.lowFreqFactor ?? 1
            let high = scaling.highFreqFactor ?? 4
            let oldContext = Float(scaling.originalMaxPositionEmbeddings ?? 8192)
            let lowWavelength = oldContext / low
            let highWavelength = oldContext / high
            return base.map { frequency in
                let wavelength = 2 * Float.pi / frequency
                if wavelength < highWavelength { return frequency }
                if wavelength > lowWavelength { return frequency / scaling.factor }
                let smooth = (oldContext / wavelength - low) / (high - low)
                return (1 - smooth) * frequency / scaling.factor + smooth * frequency
            }
        default:
            return base
        }
    }
}

extension LlamaConfig {
    /// From a GGUF file's `llama.*` keys (<doc:FileFormats>).
    /// Reads a Hugging Face `config.json`: a Llama architecture, decoded and validated.
    public init(huggingFaceConfig path: String) throws(LoRAError) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .unreadableFile(file: path, reason: "no such file, or it cannot be read")
        }
        struct Kind: Decodable {
            let model_type: String?
            let architectures: [String]?
        }
        guard let kind = try? JSONDecoder().decode(Kind.self, from: data) else {
            throw .malformedFile(file: path, problem: "not a JSON object")
        }
        let architecture = kind.architectures?.first ?? kind.model_type ?? "unknown"
        guard kind.model_type == "llama" || architecture == "LlamaForCausalLM" else {
            throw .unsupportedArchitecture(file: path, architecture: architecture)
        }
        do {
            self = try JSONDecoder().decode(LlamaConfig.self, from: data)
        } catch {
            throw .invalidMetadata(file: path, key: "config", problem: "\(error)")
        }
        try validate(file: path)
    }

    public init(gguf: GGUFFile) throws(LoRAError) {
        let file = gguf.path
        guard let architecture = gguf["general.architecture"]?.stringValue else {
            throw .invalidMetadata(file: file, key: "general.architecture", problem: "missing")
        }
        guard architecture == "llama" else { throw .unsupportedArchitecture(file: file, architecture: architecture) }
        func int(_ key: String) throws(LoRAError) -> Int {
            guard let value = gguf["llama.\(key)"] else { throw .invalidMetadata(file: file, key: "llama.\(key)", problem: "missing") }
            guard let v = value.intValue else { throw .invalidMetadata(file: file, key: "llama.\(key)", problem: "not an integer") }
            return v
        }
        func float(_ key: String) throws(LoRAError) -> Float? {
            guard let value = gguf["llama.\(key)"] else { return nil }
            guard let v = value.floatValue else { throw .invalidMetadata(file: file, key: "llama.\(key)", problem: "not a number") }
            return Float(v)
        }
        let heads = try int("attention.head_count")
        let hidden = try int("embedding_length")
        let vocab: Int
        if gguf["llama.vocab_size"] != nil {
            vocab = try int("vocab_size")
        } else {
            // older files leave the vocabulary size to the token list
            vocab = gguf["tokenizer.ggml.tokens"]?.arrayValue?.count ?? gguf.tensor(named: "token_embd.weight")?.shape.first ?? 0
        }
        var scaling: RoPEScaling?
        if let type = gguf["llama.rope.scaling.type"]?.stringValue, type != "none" {
            scaling = RoPEScaling(
                ropeType: type, factor: try float("rope.scaling.factor") ?? 1,
                originalMaxPositionEmbeddings: gguf["llama.rope.scaling.original_context_length"]?.intValue)
        }
        let headDim = gguf["llama.attention.key_length"] != nil ? try int("attention.key_length") : nil
        self.init(
            hiddenSize: hidden,
            intermediateSize: try int("feed_forward_length"),
            numHiddenLayers: try int("block_count"),
            numAttentionHeads: heads,
            numKeyValueHeads: gguf["llama.attention.head_count_kv"] != nil ? try int("attention.head_count_kv") : heads,
            headDim: headDim,
            vocabSize: vocab,
            rmsNormEps: try float("attention.layer_norm_rms_epsilon") ?? 1e-5,
            ropeTheta: try float("rope.freq_base") ?? 10_000,
            ropeScaling: scaling,
            tieWordEmbeddings: gguf.tensor(named: "output.weight") == nil,
            maxPositionEmbeddings: gguf["llama.context_length"] != nil ? try int("context_length") : 2048)
        try validate(file: file)
    }
}
