/// SplitMix64: small, fast, and seedable, so initializations and tests reproduce.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension Tensor {
    /// Values drawn uniformly from `range`, reproducibly from `seed`.
    public static func uniform(_ shape: [Int], in range: ClosedRange<Float> = -1...1, seed: UInt64) -> Tensor {
        var generator = SeededGenerator(seed: seed)
        var t = Tensor(zeros: shape)
        t.withUnsafeMutableBufferPointer { values in
            for i in values.indices { values[i] = Float.random(in: range, using: &generator) }
        }
        return t
    }
}
