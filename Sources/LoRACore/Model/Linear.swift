/// Something added to a projection's output: LoRA implements it. A projection without an
/// adapter pays nothing for the hook.
public protocol LinearAdapter: AnyObject, Sendable {
    var inFeatures: Int { get }
    var outFeatures: Int { get }
    /// y += adapter(x) for x [..., inFeatures], y [..., outFeatures].
    func addOutput(of x: Tensor, to y: Tensor)
}

/// A frozen projection y = x·Wᵀ (W [out, in], no bias: Llama has none), in quantized blocks
/// (int8 or 4-bit) for speed or in f32 for exact reference runs, with an optional adapter on
/// its output.
public final class Linear: @unchecked Sendable {
    public enum Weight: Sendable {
        case quantized(QuantizedWeight)
        case f32(Tensor) // [out, in]

        public var inFeatures: Int {
            switch self {
            case .quantized(let w): w.cols
            case .f32(let w): w.shape[1]
            }
        }

        public var outFeatures: Int {
            switch self {
            case .quantized(let w): w.rows
            case .f32(let w): w.shape[0]
            }
        }

        /// The exact f32 values of the weight.
        public func dequantized() -> Tensor {
            switch self {
            case .quantized(let w): w.dequantized()
            case .f32(let w): w
            }
        }

        /// Bytes the weight takes in memory.
        public var byteCount: Int {
            switch self {
            case .quantized(let w): w.byteCount
            case .f32(let w): w.count * MemoryLayout<Float>.size
            }
        }
    }

    public let weight: Weight
    public var adapter: (any LinearAdapter)? {
        willSet {
            if let newValue {
                precondition(
                    newValue.inFeatures == inFeatures && newValue.outFeatures == outFeatures,
                    "Linear: adapter [\(newValue.outFeatures), \(newValue.inFeatures)] on weight [\(outFeatures), \(inFeatures)]")
            }
        }
    }

    /// The adapter when it is a LoRA adapter, which a backward pass trains.
    public var trainableAdapter: LoRAAdapter? { adapter as? LoRAAdapter }

    public init(_ weight: Weight) {
        self.weight = weight
    }

    public var inFeatures: Int { weight.inFeatures }
    public var outFeatures: Int { weight.outFeatures }
    /// Bytes the frozen weight takes in memory.
    public var byteCount: Int { weight.byteCount }

    /// x [..., in] → y [..., out].
    public func callAsFunction(_ x: Tensor) -> Tensor {
        let y: Tensor
        switch weight {
        case .quantized(let w):
            y = Kernels.matmul(x, w)
        case .f32(let w):
            precondition(x.rowLength == w.shape[1], "Linear: x \(x.shape) for weight \(w.shape)")
            y = Kernels.matmul(x.reshaped([x.rowCount, x.rowLength]), w, transposeB: true)
                .reshaped(Array(x.shape.dropLast()) + [w.shape[0]])
        }
        adapter?.addOutput(of: x, to: y)
        return y
    }

    /// dx = dy·W through the frozen weight only (an adapter's share is the adapter's own backward).
    public func backwardData(_ dy: Tensor) -> Tensor {
        switch weight {
        case .quantized(let w):
            return Kernels.matmulBackwardData(dy, w, mode: w.backwardMode)
        case .f32(let w):
            precondition(dy.rowLength == w.shape[0], "Linear.backwardData: dy \(dy.shape) for weight \(w.shape)")
            return Kernels.matmul(dy.reshaped([dy.rowCount, dy.rowLength]), w)
                .reshaped(Array(dy.shape.dropLast()) + [w.shape[1]])
        }
    }
}
