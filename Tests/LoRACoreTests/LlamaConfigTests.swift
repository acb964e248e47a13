import Foundation
import LoRACore
import Testing

struct LlamaConfigTests {
    /// Frequencies of plain, linear and Llama 3.1 RoPE against transformers' rope_init_functions
    /// (scripts/make-rope-fixtures.py), from config.json-shaped input.
    @Test func ropeFrequenciesMatchTransformers() throws {
        struct Case: Decodable {
            let config: [String: JSONValue]
            let inv_freq: [Double]
        }
        for item in try Fixtures.json("rope-scaling.json", as: [Case].self) {
            let data = try JSONEncoder().encode(item.config)
            let config = try JSONDecoder().decode(LlamaConfig.self, from: data)
            try config.validate(file: "rope-scaling.json")
            let frequencies = config.ropeFrequencies()
            #expect(frequencies.count == item.inv_freq.count)
            let worst = zip(frequencies, item.inv_freq).map { abs(Double($0) - $1) / $1 }.max()!
            #expect(worst <= 2e-6, "\(config.ropeScaling?.ropeType ?? "default"): worst relative error \(worst)")
        }
    }

    @Test func invalidConfigurationsNameTheKey() throws {
        var config = LlamaConfig(
            hiddenSize: 64, intermediateSize: 96, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 3,
            vocabSize: 10)
        #expect(
            throws: LoRAError.invalidMetadata(file: "c.json", key: "num_key_value_heads", problem: "3 does not divide 4 attention heads")
        ) {
            try config.validate(file: "c.json")
        }
        config.numKeyValueHeads = 2
        config.ropeScaling = .init(ropeType: "yarn", factor: 4)
        #expect(throws: LoRAError.self) { try config.validate(file: "c.json") }
    }
}

/// Any JSON value, to carry a fixture's config object through JSONEncoder.
enum JSONValue: Codable {
    case number(Double)
    case string(String)
    case bool(Bool)
    case object([String: JSONValue])
    case null

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let n = try? c.decode(Double.self) {
            self = .number(n)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else {
            self = .object(try c.decode([String: JSONValue].self))
        }
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .number(let n): n == n.rounded() && abs(n) < 1e15 ? try c.encode(Int(n)) : try c.encode(n)
        case .string(let s): try c.encode(s)
        case .bool(let b): try c.encode(b)
        case .object(let o): try c.encode(o)
        case .null: try c.encodeNil()
        }
    }
}
