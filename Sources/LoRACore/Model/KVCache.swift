/// Keys and values of every layer for the positions seen so far, so each new token costs
/// one position of work instead of the whole prefix.
public final class KVCache: @unchecked Sendable {
    /// How the cache stores keys and values.
    public enum Precision: Sendable {
        /// Exact: for f32 reference runs.
        case f32
        /// IEEE half: half the memory; its rounding (2⁻¹¹ relative) is far below the int8
        /// model's own.
        case f16

        var bytes: Int { self == .f32 ? 4 : 2 }
    }

    /// Positions it can hold.
    public let capacity: Int
    public let precision: Precision
    /// The tokens whose keys and values it holds, in order: a conversation's next prompt
    /// reuses the longest prefix it shares with them.
    public private(set) var tokens: [Int32] = []
    /// Positions it holds now: the position of the next token.
    public var count: Int { tokens.count }
    let width: Int
    /// Keys after RoPE, transposed: a decoding step then scores all keys with vector FMAs.
    let transposedKeys: [AlignedBuffer] // per layer [kvHeads·headDim, keyStride]
    /// Elements from one key dimension's row to the next: the capacity rounded up to 32, so
    /// that every row starts on a cache line and a block of 32 half keys is one line, not two.
    let keyStride: Int
    let values: [AlignedBuffer] // per layer [capacity, kvHeads·headDim]

    public convenience init(config: LlamaConfig, capacity: Int, precision: Precision = .f32) {
        self.init(width: config.keyValueWidth, layers: config.numHiddenLayers, capacity: capacity, precision: precision)
    }

    init(width: Int, layers: Int, capacity: Int, precision: Precision) {
        precondition(capacity > 0, "KVCache: capacity \(capacity)")
        self.capacity = capacity
        self.precision = precision
        self.width = width
        // Not zero-filled: attention reads only positions already written, so a large
        // capacity costs memory only as it fills.
        keyStride = (capacity + 31) / 32 * 32
        values = (0..<layers).map { _ in AlignedBuffer(byteCount: capacity * width * precision.bytes, zeroed: false, transient: false) }
        transposedKeys = (0..<layers).map { [keyStride] _ in
            AlignedBuffer(byteCount: keyStride * width * precision.bytes, zeroed: false, transient: false)
        }
    }

    /// Positions left.
    public var free: Int { capacity - count }

    /// Forgets positions from `position` on (e.g. to reuse a shared prompt prefix).
    public func truncate(to position: Int) {
        precondition(position >= 0 && position <= count, "KVCache.truncate: \(position) outside 0...\(count)")
        tokens.removeLast(count - position)
    }

    /// Stores layer `layer`'s keys and values [tokens, width] at positions count..<count+tokens.
    func store(layer: Int, keys k: Tensor, values v: Tensor) {
        precondition(
            k.rowLength == width && v.shape == k.shape && count + k.rowCount <= capacity,
            "KVCache.store: keys \(k.shape), values \(v.shape) at \(count) of \(capacity)")
        Kernels.storeInCache(
            keys: k, values: v, transposedKeys: transposedKeys[layer], keyStride: keyStride, cacheValues: values[layer],
            position: count, half: precision == .f16)
    }

    func append(_ new: [Int32]) {
        tokens += new
    }
}

extension KVCache {
    /// A new cache of `capacity` positions holding this one's positions: the continuations
    /// of one context each get their own cache, the context computed once.
    public func copy(capacity: Int) -> KVCache {
        precondition(capacity >= count, "KVCache.copy: \(count) positions into a capacity of \(capacity)")
        let copy = KVCache(width: width, layers: values.count, capacity: capacity, precision: precision)
        for layer in values.indices {
            Kernels.copyCache(
                transposedKeys: transposedKeys[layer], keyStride: keyStride, values: values[layer], positions: count,
                width: width, half: precision == .f16, intoKeys: copy.transposedKeys[layer], keyStride: copy.keyStride,
                values: copy.values[layer])
        }
        copy.append(tokens)
        return copy
    }
}
