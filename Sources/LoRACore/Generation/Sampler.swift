import Foundation

/// How the next token is picked from the logits.
public struct SamplingParameters: Sendable, Equatable {
    /// 0 picks the most likely token (greedy); otherwise logits are divided by it.
    public var temperature: Float = 0
    /// Keep only the k most likely tokens (0: all).
    public var topK: Int = 0
    /// Keep the smallest set of most likely tokens whose probability reaches p (1: all).
    public var topP: Float = 1
    /// Drop tokens less likely than minP × the top token's probability (0: none).
    public var minP: Float = 0
    /// > 1 makes tokens already in the context less likely (CTRL's penalty, as transformers).
    public var repetitionPenalty: Float = 1
    public var seed: UInt64 = 0

    public init(temperature: Float = 0, topK: Int = 0, topP: Float = 1, minP: Float = 0, repetitionPenalty: Float = 1,
                seed: UInt64 = 0) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.minP = minP
        self.repetitionPenalty = repetitionPenalty
        self.seed = seed
    }
}

/// Picks tokens from logits in transformers' order: repetition penalty, temperature,
/// top-k, top-p, min-p, then a draw (or the arg-max when greedy).
public struct Sampler: Sendable {
    public let parameters: SamplingParameters
    private var generator: SeededGenerator

    public init(_ parameters: SamplingParameters) {
        self.parameters = parameters
        generator = SeededGenerator(seed: parameters.seed)
    }

    /// The next token given logits [vocab] and the context so far.
    public mutating func next(logits: [Float], context: [Int32]) -> Int32 {
        var logits = logits
        let p = parameters
        if p.repetitionPenalty != 1 {
            for id in Set(context) where Int(id) < logits.count {
                let z = logits[Int(id)]
                logits[Int(id)] = z > 0 ? z / p.repetitionPenalty : z * p.repetitionPenalty
            }
        }
        guard p.temperature > 0 else { return Int32(Self.argmax(logits)) }
        // candidates sorted by logit, most likely first
        var candidates = logits.indices.map { (id: $0, logit: logits[$0] / p.temperature) }
        if p.topK > 0 && p.topK < candidates.count {
            candidates = Array(candidates.sorted { $0.logit > $1.logit }.prefix(p.topK))
        } else {
            candidates.sort { $0.logit > $1.logit }
        }
        let top = candidates[0].logit
        var probabilities = candidates.map { exp($0.logit - top) }
        let sum = probabilities.reduce(0, +)
        probabilities = probabilities.map { $0 / sum }
        var keep = probabilities.count
        if p.topP < 1 {
            var cumulative: Float = 0
            for (i, q) in probabilities.enumerated() {
                cumulative += q
                if cumulative >= p.topP {
                    keep = i + 1
                    break
                }
            }
        }
        if p.minP > 0 {
            let threshold = p.minP * probabilities[0]
            keep = min(keep, max(1, probabilities.prefix(keep).firstIndex { $0 < threshold } ?? keep))
        }
        let kept = probabilities.prefix(keep)
        let total = kept.reduce(0, +)
        var draw = Float(Double(generator.next() >> 11) / Double(1 << 53)) * total
        for (i, q) in kept.enumerated() {
            draw -= q
            if draw < 0 { return Int32(candidates[i].id) }
        }
        return Int32(candidates[keep - 1].id)
    }

    static func argmax(_ values: [Float]) -> Int {
        var best = 0
        for i in values.indices where values[i] > values[best] { best = i }
        return best
    }
}
