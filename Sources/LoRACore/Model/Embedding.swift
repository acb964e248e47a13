/// The token embedding table [vocab, dim]; with tied embeddings it is also the output head.
public final class Embedding: @unchecked Sendable {
    public let table: Linear.Weight

    public init(_ table: Linear.Weight) {
        self.table = table
    }

    /// Rows of the table for `tokens` → [tokens, dim]. Ids are checked by the caller.
    public func callAsFunction(_ tokens: [Int32]) -> Tensor {
        switch table {
        case .quantized(let w): Kernels.gatherRows(w, tokens)
        case .f32(let w): Kernels.gatherRows(w, tokens)
        }
    }
}
