/// Keys and values of every layer for the positions seen so far, so each new token costs
/// one position of work instead of the whole prefix.
public final class KVCache: @unchecked Sendable {
    /// Positions it can hold.
    public let capacity: Int
    /// Positions it holds now: the position of the next token.
    public private(set) var count = 0
    /// Keys after RoPE, transposed: a decoding step then scores all keys with vector FMAs.
    let transposedKeys: [Tensor]  // per layer [kvHeads·headDim, capacity]
    let values: [Tensor]          // per layer [capacity, kvHeads·headDim]

    public init(config: LlamaConfig, capacity: Int) {
        precondition(capacity > 0, "KVCache: capacity \(capacity)")
        self.capacity = capacity
        values = (0..<config.numHiddenLayers).map { _ in Tensor(zeros: [capacity, config.keyValueWidth]) }
        transposedKeys = (0..<config.numHiddenLayers).map { _ in Tensor(zeros: [config.keyValueWidth, capacity]) }
    }

    /// Positions left.
    public var free: Int { capacity - count }

    /// Forgets positions from `position` on (e.g. to reuse a shared prompt prefix).
    public func truncate(to position: Int) {
        precondition(position >= 0 && position <= count, "KVCache.truncate: \(position) outside 0...\(count)")
        count = position
    }

    /// Stores layer `layer`'s keys and values [tokens, width] at positions count..<count+tokens.
    func store(layer: Int, keys k: Tensor, values v: Tensor) {
        let rows = count..<count + k.rowCount
        values[layer].rows(rows).assign(v)
        Kernels.transpose(k, into: transposedKeys[layer], column: count)
    }

    func advance(by tokens: Int) {
        count += tokens
    }
}
