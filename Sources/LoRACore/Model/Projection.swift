/// The seven projections of a Llama decoder layer: the one table of their names in both
/// checkpoint schemes, where they are stacked, which ones feed RoPE and their shapes. The
/// loader, the adapters, the exporters and the memory plan all read it.
public enum Projection: String, CaseIterable, Sendable, Codable {
    case q = "q_proj"
    case k = "k_proj"
    case v = "v_proj"
    case o = "o_proj"
    case gate = "gate_proj"
    case up = "up_proj"
    case down = "down_proj"

    /// The block of the layer that holds it, by its Hugging Face module name.
    public enum Block: String, Sendable {
        case selfAttn = "self_attn"
        case mlp
    }

    /// The Hugging Face module name (`q_proj`), which PEFT's `target_modules` uses too.
    public var name: String { rawValue }

    public var block: Block {
        switch self {
        case .q, .k, .v, .o: .selfAttn
        case .gate, .up, .down: .mlp
        }
    }

    /// llama.cpp's tensor name within a block (`blk.N.attn_q.weight`).
    var ggufName: String {
        switch self {
        case .q: "attn_q"
        case .k: "attn_k"
        case .v: "attn_v"
        case .o: "attn_output"
        case .gate: "ffn_gate"
        case .up: "ffn_up"
        case .down: "ffn_down"
        }
    }

    /// The matrices of a layer as the loader stores them: q, k and v stacked into one matrix
    /// (one product for the three; each projection a view of its rows, in this order), o
    /// alone, gate and up stacked, down alone.
    static let storage: [[Projection]] = [[.q, .k, .v], [.o], [.gate, .up], [.down]]

    /// Whether its output rows are rotated by RoPE: their order then depends on the
    /// checkpoint's RoPE layout (llama.cpp's converter permutes them, and lora_B with them).
    public var isRotary: Bool { self == .q || self == .k }

    /// The weight's shape [out, in] for `config`.
    public func shape(_ config: LlamaConfig) -> (outFeatures: Int, inFeatures: Int) {
        let dim = config.hiddenSize
        return switch self {
        case .q: (config.queryWidth, dim)
        case .k, .v: (config.keyValueWidth, dim)
        case .o: (dim, config.queryWidth)
        case .gate, .up: (config.intermediateSize, dim)
        case .down: (dim, config.intermediateSize)
        }
    }

    /// The Hugging Face module path in layer `layer`: `model.layers.3.self_attn.q_proj`.
    public func modulePath(layer: Int) -> String { "model.layers.\(layer).\(block.rawValue).\(name)" }

    /// The weight's tensor name in layer `layer` of a Hugging Face checkpoint.
    func huggingFaceTensor(layer: Int) -> String { modulePath(layer: layer) + ".weight" }

    /// The weight's tensor name in layer `layer` of a GGUF file: `blk.3.attn_q.weight`.
    func ggufTensor(layer: Int) -> String { "blk.\(layer).\(ggufName).weight" }

    /// The layer and projection of a Hugging Face module path; nil for anything else.
    public static func parse(modulePath: String) -> (layer: Int, projection: Projection)? {
        let parts = modulePath.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 5, parts[0] == "model", parts[1] == "layers", let layer = Int(parts[2]), layer >= 0,
            let projection = Projection(rawValue: String(parts[4])), parts[3] == projection.block.rawValue
        else { return nil }
        return (layer, projection)
    }
}

extension RoPELayout {
    /// `matrix` [out, ·], whose rows are `projection`'s outputs (lora_B, a merged weight), from
    /// Hugging Face's row order into this layout's, or back with `toHuggingFace`: only the
    /// rotary projections of a model that rotates adjacent pairs differ.
    func outputRows(_ matrix: Tensor, of projection: Projection, headDim: Int, toHuggingFace: Bool = false) -> Tensor {
        guard self == .adjacentPairs, projection.isRotary else { return matrix }
        return matrix.permutingRowPairs(headDim: headDim, inverse: toHuggingFace)
    }
}
