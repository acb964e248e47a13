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

    public init(
        temperature: Float = 0, topK: Int = 0, topP: Float = 1, minP: Float = 0, repetitionPenalty: Float = 1,
        seed: UInt64 = 0
    ) {
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
        // Weights relative to the most likely token, q = exp((z - zmax) / T): every filter
        // reads them, and a draw is proportional to them.
        let top = logits[Self.argmax(logits)]
        let weights = logits.map { exp(($0 - top) / p.temperature) }
        // Top-k and top-p need the most likely tokens in order, but sorting a whole
        // vocabulary costs as much as a decoding step: sort only the tokens above a weight
        // floor, and lower the floor until the filters are decided inside that head. Min-p
        // drops everything below its own floor anyway.
        let ordered = p.topK > 0 || p.topP < 1
        var floor = max(p.minP, ordered ? 1e-4 : 0)
        var head: [Int] = []
        while true {
            head = weights.indices.filter { weights[$0] >= floor }
            if ordered { head.sort { weights[$0] > weights[$1] } }
            if p.topK > 0 && head.count > p.topK { head.removeLast(head.count - p.topK) }
            let decided: Bool
            if floor <= p.minP || floor == 0 {
                decided = true
            } else if p.topK > 0 {
                decided = head.count == p.topK
            } else {
                // the nucleus lies inside the head once the head's share reaches top-p
                let total = weights.reduce(0, +)
                decided = head.reduce(0) { $0 + weights[$1] } >= p.topP * total
            }
            if decided { break }
            floor = floor > 1e-12 ? floor * 1e-4 : 0
        }
        // top-p over what top-k kept, renormalized, as transformers applies them in turn
        var keep = head.count
        if p.topP < 1 {
            let total = (p.topK > 0 ? head.map { weights[$0] } : weights).reduce(0, +)
            var cumulative: Float = 0
            for (i, id) in head.enumerated() {
                cumulative += weights[id]
                if cumulative >= p.topP * total {
                    keep = i + 1
                    break
                }
            }
        }
        let kept = head.prefix(keep)
        let mass = kept.reduce(0) { $0 + weights[$1] }
        var draw = Float(Double(generator.next() >> 11) / Double(1 << 53)) * mass
        for id in kept {
            draw -= weights[id]
            if draw < 0 { return Int32(id) }
        }
        return Int32(kept.last!)
    }

    static func argmax(_ values: [Float]) -> Int {
        var best = 0
        for i in values.indices where values[i] > values[best] { best = i }
        return best
    }
}
