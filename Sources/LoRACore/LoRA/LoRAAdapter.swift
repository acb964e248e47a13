/// A LoRA adapter on one projection: y += scale · (x·Aᵀ)·Bᵀ with A [rank, in], B [out, rank]
/// and scale = alpha / rank (alpha / √rank with rsLoRA), as PEFT computes it (peft-lora.md §1).
public final class LoRAAdapter: LinearAdapter, @unchecked Sendable {
    public let a: Tensor  // [rank, in]
    public let b: Tensor  // [out, rank]
    public let scale: Float

    public init(a: Tensor, b: Tensor, scale: Float) {
        precondition(a.rank == 2 && b.rank == 2 && a.shape[0] == b.shape[1],
                     "LoRAAdapter: A \(a.shape) and B \(b.shape) do not share a rank")
        self.a = a
        self.b = b
        self.scale = scale
    }

    public var rank: Int { a.shape[0] }
    public var inFeatures: Int { a.shape[1] }
    public var outFeatures: Int { b.shape[0] }

    public func addOutput(of x: Tensor, to y: Tensor) {
        let down = Kernels.matmul(x.reshaped([x.rowCount, x.rowLength]), a, transposeB: true)  // [tokens, rank]
        Kernels.matmulAccumulate(down, b, transposeB: true, alpha: scale, into: y.reshaped([y.rowCount, y.rowLength]))
    }
}
