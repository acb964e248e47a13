/// Sequences side by side for one forward and backward pass. No padding is stored: each
/// sequence keeps its own length and positions, attention never crosses from one to another,
/// so the pass equals a padded, masked batch without computing the padding.
public struct TrainingBatch: Sendable, Equatable {
    public let tokens: [Int32]
    /// Per position: the next token when the loss counts it, else -1 (masked or last).
    public let targets: [Int32]
    /// Lengths of the sequences, in order.
    public let sequences: [Int]

    public init(tokens: [Int32], targets: [Int32], sequences: [Int]) {
        precondition(
            tokens.count == targets.count && sequences.reduce(0, +) == tokens.count && sequences.allSatisfy { $0 > 0 },
            "TrainingBatch: \(tokens.count) tokens, \(targets.count) targets, sequences \(sequences)")
        self.tokens = tokens
        self.targets = targets
        self.sequences = sequences
    }

    /// Examples one after another, one sequence each.
    public init(examples: some Collection<TrainingExample>) {
        self.init(tokens: examples.flatMap(\.tokens), targets: examples.flatMap(\.targets), sequences: examples.map(\.tokens.count))
    }

    /// Targets the loss counts.
    public var countedTokens: Int { targets.count { $0 >= 0 } }
}

/// The summed loss of a pass and how many targets it counted (mean = sum / counted).
public struct LossSum: Sendable, Equatable, Codable {
    public var sum: Double
    public var counted: Int

    public init(sum: Double = 0, counted: Int = 0) {
        self.sum = sum
        self.counted = counted
    }

    public var mean: Double { counted > 0 ? sum / Double(counted) : 0 }

    public static func += (lhs: inout LossSum, rhs: LossSum) {
        lhs.sum += rhs.sum
        lhs.counted += rhs.counted
    }
}
