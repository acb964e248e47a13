import CKernels

extension Kernels {
    /// Where attention reads its keys: rows [≥ keys, kvHeads·headDim] as a projection makes
    /// them, or transposed [kvHeads·headDim, ≥ keys] as a KV cache keeps them.
    public enum Keys {
        case rows(Tensor)
        case transposed(Tensor)
    }

    /// Grouped-query causal attention of `queries` [tokens, heads·headDim] over the first
    /// `keyCount` keys and rows of `values` [≥ keyCount, kvHeads·headDim] (with a cache, the
    /// last `tokens` of those belong to the queries). Returns [tokens, heads·headDim] and,
    /// when asked, the probabilities [heads, tokens, keyCount] a backward pass needs.
    public static func attention(queries: Tensor, keys: Keys, values: Tensor, keyCount: Int, heads: Int, kvHeads: Int,
                                 keepProbabilities: Bool = false) -> (output: Tensor, probabilities: Tensor?) {
        let tokens = queries.rowCount, width = queries.rowLength, kvWidth = values.rowLength
        let keyTensor: Tensor, keysFit: Bool
        switch keys {
        case .rows(let k):
            keyTensor = k
            keysFit = k.rank == 2 && k.shape[1] == kvWidth && k.shape[0] >= keyCount
        case .transposed(let kt):
            keyTensor = kt
            keysFit = kt.rank == 2 && kt.shape[0] == kvWidth && kt.shape[1] >= keyCount
        }
        precondition(heads > 0 && kvHeads > 0 && heads % kvHeads == 0 && width % heads == 0 && kvWidth == width / heads * kvHeads
                     && keysFit && keyCount >= tokens && keyCount <= values.rowCount,
                     "attention: queries \(queries.shape), keys \(keys), values \(values.shape), \(keyCount) keys, \(heads)/\(kvHeads) heads")
        let headDim = width / heads
        var output = Tensor(zeros: queries.shape)
        var probabilities = keepProbabilities ? Tensor(zeros: [heads, tokens, keyCount]) : nil
        let size = keepProbabilities ? 0 : ck_attention_workspace_size(Int32(tokens), Int32(keyCount))
        let status = withWorkspace(bytes: size) { workspace, count in
            queries.withUnsafeBufferPointer { qp in
                keyTensor.withUnsafeBufferPointer { kp in
                    values.withUnsafeBufferPointer { vp in
                        output.withUnsafeMutableBufferPointer { op in
                            func run(_ pp: UnsafeMutablePointer<Float>?) -> ck_status {
                                let (k, kt): (UnsafePointer<Float>?, UnsafePointer<Float>?)
                                if case .rows = keys { (k, kt) = (kp.baseAddress, nil) } else { (k, kt) = (nil, kp.baseAddress) }
                                return ck_attention_fwd(qp.baseAddress, Int32(tokens), Int32(heads), Int32(kvHeads), Int32(headDim),
                                                        k, vp.baseAddress, Int32(keyCount), Int32(kvWidth), kt, Int32(keyTensor.rowLength),
                                                        1 / Float(headDim).squareRoot(), op.baseAddress, pp, workspace, count)
                            }
                            return probabilities == nil ? run(nil) : probabilities!.withUnsafeMutableBufferPointer { run($0.baseAddress) }
                        }
                    }
                }
            }
        }
        check(status, "attention queries \(queries.shape) keys \(keys) keyCount \(keyCount)")
        return (output, probabilities)
    }

    /// Rows `ids` of an f32 table [rows, cols] → [ids, cols].
    public static func gatherRows(_ table: Tensor, _ ids: [Int32]) -> Tensor {
        precondition(table.rank == 2 && ids.allSatisfy { $0 >= 0 && Int($0) < table.shape[0] },
                     "gatherRows: an id is outside the table's \(table.shape[0]) rows")
        let cols = table.shape[1]
        var result = Tensor(zeros: [ids.count, cols])
        table.withUnsafeBufferPointer { src in
            result.withUnsafeMutableBufferPointer { dst in
                for (i, id) in ids.enumerated() {
                    let row = UnsafeBufferPointer(rebasing: src[Int(id) * cols..<(Int(id) + 1) * cols])
                    _ = UnsafeMutableBufferPointer(rebasing: dst[i * cols..<(i + 1) * cols]).initialize(from: row)
                }
            }
        }
        return result
    }

    /// Rows `ids` of an int8 matrix, dequantized → [ids, cols].
    public static func gatherRows(_ table: QuantizedWeight, _ ids: [Int32]) -> Tensor {
        precondition(ids.allSatisfy { $0 >= 0 && Int($0) < table.rows }, "gatherRows: an id is outside the table's \(table.rows) rows")
        var result = Tensor(zeros: [ids.count, table.cols])
        result.withUnsafeMutableBufferPointer { dst in
            for (i, id) in ids.enumerated() {
                ck_q8_packed_dequantize(table.panels, Int32(table.rows), Int32(table.cols), id, 1, 0, Int32(table.cols),
                                        dst.baseAddress! + i * table.cols, Int32(table.cols))
            }
        }
        return result
    }

    /// Writes x [rows, cols] transposed into columns column..<column+rows of t [cols, ≥ column+rows].
    static func transpose(_ x: Tensor, into t: Tensor, column: Int) {
        let rows = x.rowCount, cols = x.rowLength, ld = t.rowLength
        precondition(t.rank == 2 && t.shape[0] == cols && column + rows <= ld, "transpose: \(x.shape) into \(t.shape) at column \(column)")
        var target = t
        x.withUnsafeBufferPointer { xp in
            target.withUnsafeMutableBufferPointer { tp in
                for i in 0..<rows { for c in 0..<cols { tp[c * ld + column + i] = xp[i * cols + c] } }
            }
        }
    }

    /// x += y, elementwise (residual connections).
    public static func add(_ y: Tensor, into x: Tensor) {
        sameShape(x, y, "add")
        var target = x
        y.withUnsafeBufferPointer { yp in
            target.withUnsafeMutableBufferPointer { xp in
                for i in xp.indices { xp[i] += yp[i] }
            }
        }
    }

    /// C += alpha · A · op(B) for f32 matrices: adds a low-rank product into an output.
    public static func matmulAccumulate(_ a: Tensor, _ b: Tensor, transposeB: Bool, alpha: Float, into c: Tensor) {
        let n = transposeB ? b.shape[0] : b.shape[1], k = transposeB ? b.shape[1] : b.shape[0]
        precondition(a.rank == 2 && b.rank == 2 && c.rank == 2 && a.shape[1] == k && c.shape == [a.shape[0], n],
                     "matmulAccumulate: a \(a.shape), b \(b.shape)\(transposeB ? "ᵀ" : ""), c \(c.shape)")
        var target = c
        let status = a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                target.withUnsafeMutableBufferPointer { cp in
                    ck_sgemm(0, transposeB ? 1 : 0, Int32(a.shape[0]), Int32(n), Int32(k), alpha, ap.baseAddress, Int32(a.shape[1]),
                             bp.baseAddress, Int32(b.shape[1]), 1, cp.baseAddress, Int32(n))
                }
            }
        }
        check(status, "matmulAccumulate a \(a.shape) b \(b.shape)")
    }
}
