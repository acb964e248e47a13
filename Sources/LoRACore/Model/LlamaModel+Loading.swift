/// How the loaded model holds its big matrices.
public enum WeightPrecision: String, Sendable, Codable, CaseIterable {
    /// int8 blocks of 32 (Q8_0): GGUF Q8_0 data as is, every other type requantized.
    case int8
    /// A GGUF's own 4- and 6-bit blocks as stored (Q4_0, Q4_1, Q4_K, Q6_K; Q8_0 as is, any
    /// other type requantized to Q8_0); a Hugging Face checkpoint's f32/f16/bf16 weights
    /// quantized to Q4_0 at load.
    case q4
    /// Exact f32 values of the stored weights: reference runs.
    case f32

    /// The block type a matrix stored as `stored` is held in, nil for f32: one rule for the
    /// loader and the memory plan.
    func heldType(stored: TensorDataType, names: LlamaTensorNames) -> TensorDataType? {
        switch self {
        case .f32: nil
        case .int8: .q8_0
        case .q4:
            if QuantizedWeight.types.contains(stored) {
                stored
            } else {
                names == .huggingFace ? .q4_0 : .q8_0
            }
        }
    }
}

/// How many matrices of each stored type a load held in each block type ("Q4_K → Q4_K",
/// "F16 → Q8_0"), for the load line.
public struct WeightConversions: Sendable, Equatable, CustomStringConvertible {
    public private(set) var counts: [String: Int] = [:]

    mutating func add(stored: TensorDataType, held: TensorDataType?) {
        counts["\(stored.rawValue) → \(held?.rawValue ?? "F32")", default: 0] += 1
    }

    public var description: String { counts.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", ") }
}

/// A checkpoint's tensors by name, whatever the file format.
protocol CheckpointTensors {
    var path: String { get }
    func contains(_ name: String) -> Bool
    func slice(_ name: String) throws(LoRAError) -> TensorSlice
    /// Hands back the memory behind a slice once it has been converted.
    func release(_ slice: TensorSlice)
}

/// Where each Llama tensor lives in a checkpoint's naming scheme; the projections' names
/// come from `Projection`.
enum LlamaTensorNames: Sendable {
    case gguf, huggingFace

    var embedding: String { self == .gguf ? "token_embd.weight" : "model.embed_tokens.weight" }
    var norm: String { self == .gguf ? "output_norm.weight" : "model.norm.weight" }
    var output: String { self == .gguf ? "output.weight" : "lm_head.weight" }

    func projection(_ projection: Projection, layer: Int) -> String {
        self == .gguf ? projection.ggufTensor(layer: layer) : projection.huggingFaceTensor(layer: layer)
    }

    /// The RMSNorm before attention, and the one before the MLP.
    func attentionNorm(layer: Int) -> String {
        self == .gguf ? "blk.\(layer).attn_norm.weight" : "model.layers.\(layer).input_layernorm.weight"
    }

    func mlpNorm(layer: Int) -> String {
        self == .gguf ? "blk.\(layer).ffn_norm.weight" : "model.layers.\(layer).post_attention_layernorm.weight"
    }
}

extension LlamaModel {
    /// Builds the model from a checkpoint's tensors, converting each one as it is read and
    /// releasing its source bytes, so memory peaks near the converted model's size.
    convenience init(
        config: LlamaConfig, tensors: CheckpointTensors, names: LlamaTensorNames, ropeLayout: RoPELayout,
        ropeFrequencies: [Float], precision: WeightPrecision,
        progress: ((WorkProgress) -> Void)?
    ) throws(LoRAError) {
        let dim = config.hiddenSize
        let total = 9 * config.numHiddenLayers + 2 + (config.tieWordEmbeddings ? 0 : 1)
        var conversions = WeightConversions()
        var done = 0
        func step() {
            done += 1
            progress?(WorkProgress(completed: done, total: total, unit: "tensors"))
        }
        func read(_ name: String, _ shape: [Int]) throws(LoRAError) -> TensorSlice {
            let slice = try tensors.slice(name)
            guard slice.shape == shape else {
                throw .tensorShapeMismatch(file: tensors.path, tensor: name, expected: shape, actual: slice.shape)
            }
            return slice
        }
        /// Converts a tensor into `target` or returns its exact f32 values (no target); a
        /// tensor holding a NaN or an infinity is refused.
        func convert(_ slice: TensorSlice, into target: QuantizedWeight?) throws(LoRAError) -> Linear.Weight {
            defer {
                tensors.release(slice)
                step()
            }
            let nonFinite: Int
            let weight: Linear.Weight
            if let target {
                if slice.type == target.type {
                    try target.fill(blocks: slice.bytes, name: slice.name)
                    nonFinite = QuantizedWeight.nonFiniteScales(blocks: slice.bytes, type: slice.type)
                } else {
                    nonFinite = target.fill { rows, values in slice.dequantize(rows: rows, into: values) }
                }
                weight = .quantized(target)
            } else {
                let values = slice.dequantized()
                nonFinite = values.nonFiniteCount
                weight = .f32(values)
            }
            conversions.add(stored: slice.type, held: target?.type)
            guard nonFinite == 0 else { throw .nonFiniteValues(file: tensors.path, tensor: slice.name, count: nonFinite) }
            return weight
        }
        func matrix(_ name: String, _ shape: [Int]) throws(LoRAError) -> Linear.Weight {
            let slice = try read(name, shape)
            let held = precision.heldType(stored: slice.type, names: names)
            return try convert(slice, into: held.map { QuantizedWeight(type: $0, rows: shape[0], cols: shape[1]) })
        }
        /// Projections of one input, converted straight into one stacked matrix when they are
        /// held in one block type.
        func stacked(_ parts: [(name: String, shape: [Int])]) throws(LoRAError) -> StackedProjections {
            var slices: [TensorSlice] = []
            for part in parts { slices.append(try read(part.name, part.shape)) }
            let held = Set(slices.map { precision.heldType(stored: $0.type, names: names) })
            guard held.count == 1, let type = held.first ?? nil,
                let (stack, views) = QuantizedWeight.stack(type: type, partRows: parts.map { $0.shape[0] }, cols: dim)
            else {
                var weights: [Linear.Weight] = []
                for part in parts { weights.append(try matrix(part.name, part.shape)) }
                return StackedProjections(weights, stack: nil)
            }
            var weights: [Linear.Weight] = []
            for (slice, view) in zip(slices, views) { weights.append(try convert(slice, into: view)) }
            return StackedProjections(weights, stack: stack)
        }
        func vector(_ name: String) throws(LoRAError) -> Tensor {
            let slice = try read(name, [dim])
            defer {
                tensors.release(slice)
                step()
            }
            let values = slice.dequantized()
            guard values.nonFiniteCount == 0 else {
                throw .nonFiniteValues(file: tensors.path, tensor: name, count: values.nonFiniteCount)
            }
            return values
        }

        let embedding = Embedding(try matrix(names.embedding, [config.vocabSize, dim]))
        var layers: [LlamaDecoderLayer] = []
        for i in 0..<config.numHiddenLayers {
            func part(_ projection: Projection) -> (name: String, shape: [Int]) {
                let shape = projection.shape(config)
                return (names.projection(projection, layer: i), [shape.outFeatures, shape.inFeatures])
            }
            func single(_ projection: Projection) throws(LoRAError) -> Linear.Weight {
                let (name, shape) = part(projection)
                return try matrix(name, shape)
            }
            let attention = LlamaAttention(qkv: try stacked([part(.q), part(.k), part(.v)]), o: try single(.o), config: config)
            let mlp = LlamaMLP(gateUp: try stacked([part(.gate), part(.up)]), down: try single(.down))
            layers.append(
                LlamaDecoderLayer(
                    selfAttn: attention, mlp: mlp,
                    inputLayernorm: RMSNorm(weight: try vector(names.attentionNorm(layer: i)), eps: config.rmsNormEps),
                    postAttentionLayernorm: RMSNorm(weight: try vector(names.mlpNorm(layer: i)), eps: config.rmsNormEps)))
        }
        let norm = RMSNorm(weight: try vector(names.norm), eps: config.rmsNormEps)
        let head = config.tieWordEmbeddings ? Linear(embedding.table) : Linear(try matrix(names.output, [config.vocabSize, dim]))
        self.init(
            config: config, ropeLayout: ropeLayout, ropeFrequencies: ropeFrequencies, embedTokens: embedding,
            layers: layers, norm: norm, lmHead: head, conversions: conversions)
    }
}

extension GGUFFile: CheckpointTensors {
    func contains(_ name: String) -> Bool { tensor(named: name) != nil }
    func release(_ slice: TensorSlice) { file.release(slice.fileRange) }
}

extension LlamaModel {
    /// Loads a GGUF file of architecture `llama`. llama.cpp's converter stores Q/K rows
    /// permuted for adjacent-pair RoPE, so the model rotates adjacent pairs.
    public convenience init(
        gguf: GGUFFile, precision: WeightPrecision = .int8,
        progress: ((WorkProgress) -> Void)? = nil
    ) throws(LoRAError) {
        let config = try LlamaConfig(gguf: gguf)
        var frequencies = config.ropeFrequencies()
        // Llama 3.1 files carry their long-context rescaling as per-pair divisors.
        if gguf.contains("rope_freqs.weight") {
            let factors = try gguf.slice("rope_freqs.weight")
            guard factors.shape == [frequencies.count] else {
                throw .tensorShapeMismatch(
                    file: gguf.path, tensor: "rope_freqs.weight", expected: [frequencies.count], actual: factors.shape)
            }
            frequencies = zip(frequencies, factors.dequantized().scalars).map { $0 / $1 }
        }
        try self.init(
            config: config, tensors: gguf, names: .gguf, ropeLayout: .adjacentPairs, ropeFrequencies: frequencies,
            precision: precision, progress: progress)
    }
}

extension LlamaModel {
    /// Bytes the weights of a GGUF file take once loaded at `precision`, from its tensor table
    /// alone (no weight is read): each matrix in the block type the loader holds its stored
    /// type in, the norms in f32.
    static func weightByteCount(gguf: GGUFFile, config: LlamaConfig, precision: WeightPrecision) throws(LoRAError) -> Int {
        let names = LlamaTensorNames.gguf
        var matrices = [names.embedding] + (config.tieWordEmbeddings ? [] : [names.output])
        for layer in 0..<config.numHiddenLayers { matrices += Projection.allCases.map { names.projection($0, layer: layer) } }
        var bytes = (2 * config.numHiddenLayers + 1) * config.hiddenSize * MemoryLayout<Float>.size
        for name in matrices {
            guard let info = gguf.tensor(named: name), info.shape.count == 2 else { throw .missingTensor(file: gguf.path, tensor: name) }
            guard let stored = info.type else {
                throw .unsupportedTensorType(file: gguf.path, tensor: name, type: "ggml type \(info.typeID)")
            }
            if let held = precision.heldType(stored: stored, names: names) {
                bytes += QuantizedWeight.byteCount(type: held, rows: info.shape[0], cols: info.shape[1])
            } else {
                bytes += info.shape[0] * info.shape[1] * MemoryLayout<Float>.size
            }
        }
        return bytes
    }

    /// Bytes the weights of `config` take once loaded at `precision`: what the loader
    /// allocates, matrix by matrix (a stack takes what its parts would), with the norms. For
    /// `.q4` every matrix counts as Q4_0 (what a Hugging Face checkpoint is quantized to).
    static func weightByteCount(config: LlamaConfig, precision: WeightPrecision) -> Int {
        func matrix(_ rows: Int, _ cols: Int) -> Int {
            switch precision {
            case .int8: QuantizedWeight.byteCount(type: .q8_0, rows: rows, cols: cols)
            case .q4: QuantizedWeight.byteCount(type: .q4_0, rows: rows, cols: cols)
            case .f32: rows * cols * MemoryLayout<Float>.size
            }
        }
        let layer = Projection.allCases.reduce(0) { sum, projection in
            let shape = projection.shape(config)
            return sum + matrix(shape.outFeatures, shape.inFeatures)
        }
        let table = matrix(config.vocabSize, config.hiddenSize)
        let norms = (2 * config.numHiddenLayers + 1) * config.hiddenSize * MemoryLayout<Float>.size
        return config.numHiddenLayers * layer + table + (config.tieWordEmbeddings ? 0 : table) + norms
    }

    /// Bytes of the transposed int8 copies a backward pass builds (`QuantizedWeight`'s
    /// backward-data operand) when it runs down to layer `lowest`: every stored matrix of
    /// those layers, one per stack, but the lowest layer's q/k/v (no input gradient is
    /// needed below it), and the output head's. None for f32 weights.
    static func backwardCopyByteCount(config: LlamaConfig, precision: WeightPrecision, lowest: Int) -> Int {
        guard precision == .int8 else { return 0 }
        func copy(rows: Int, cols: Int) -> Int { QuantizedWeight.byteCount(type: .q8_0, rows: rows, cols: cols) }
        var bytes = copy(rows: config.hiddenSize, cols: config.vocabSize)
        for layer in lowest..<config.numHiddenLayers {
            for group in Projection.storage where !(layer == lowest && group.contains(.q)) {
                let shapes = group.map { $0.shape(config) }
                if group.count > 1, QuantizedWeight.canStack(partRows: shapes.map(\.outFeatures)) {
                    bytes += copy(rows: shapes[0].inFeatures, cols: shapes.reduce(0) { $0 + $1.outFeatures })
                } else {
                    bytes += shapes.reduce(0) { $0 + copy(rows: $1.inFeatures, cols: $1.outFeatures) }
                }
            }
        }
        return bytes
    }

    /// Every quantized matrix the model multiplies with: each stack or its parts, and the head.
    var quantizedWeights: [QuantizedWeight] {
        func weights(_ linear: Linear) -> [QuantizedWeight] { if case .quantized(let w) = linear.weight { [w] } else { [] } }
        func weights(_ stacked: StackedProjections) -> [QuantizedWeight] { stacked.stack.map { [$0] } ?? stacked.linears.flatMap(weights) }
        return layers.reduce(weights(lmHead)) { all, layer in
            all + weights(layer.selfAttn.qkv) + weights(layer.selfAttn.oProj) + weights(layer.mlp.gateUp) + weights(layer.mlp.downProj)
        }
    }

    /// How backward passes read the frozen weights (`TrainingMemory.backwardData` chooses);
    /// a transposed copy is built on a weight's first backward pass and freed when this
    /// changes to another mode. Weights in f32 always multiply exactly.
    public var backwardData: BackwardDataMode {
        get { quantizedWeights.first?.backwardMode ?? .exact }
        set {
            for weight in quantizedWeights where newValue != .transposedCopy || weight.type == .q8_0 { weight.backwardMode = newValue }
        }
    }

    /// Bytes of the transposed int8 copies the backward passes have built so far, measured
    /// (what `TrainingMemory.backwardCopies` plans).
    public var transposedCopyBytes: Int { quantizedWeights.reduce(0) { $0 + $1.transposedByteCount } }
}
