import CKernels

/// How a product with int8 weights treats its activations.
public enum ActivationPrecision: Sendable {
    /// Quantized on the fly to int8 blocks of 32 (llama.cpp's Q8_0 × Q8_0): fast.
    case int8
    /// Kept in f32 against dequantized weight tiles: exact for the stored weights.
    case f32

    var cValue: ck_act_mode { self == .int8 ? CK_ACT_INT8 : CK_ACT_F32 }
}

/// Thin typed wrappers over the C kernels. Shapes are checked here and a mismatch traps
/// with the operation and the shapes; pointers never leave these functions.
public enum Kernels {
    /// Scratch the kernels write before they read: zero-filling it would only cost time on
    /// every product.
    static func withWorkspace<R>(bytes: Int, _ body: (UnsafeMutableRawPointer, Int) -> R) -> R {
        let buffer = AlignedBuffer(byteCount: bytes, zeroed: false)
        return body(buffer.pointer, bytes)
    }

    static func check(_ status: ck_status, _ operation: @autoclosure () -> String) {
        precondition(status == CK_OK, "\(operation()): kernel failed with status \(status.rawValue)")
    }

    /// Y = X · Wᵀ: X [..., w.cols] → Y [..., w.rows]. One row runs the GEMV path.
    public static func matmul(_ x: Tensor, _ w: QuantizedWeight, activations: ActivationPrecision = .int8) -> Tensor {
        precondition(
            x.rank >= 1 && x.rowLength == w.cols,
            "matmul: x \(x.shape) does not end in the weight's \(w.cols) input features (weight [\(w.rows), \(w.cols)])")
        let m = x.rowCount
        var y = Tensor(uninitialized: Array(x.shape.dropLast()) + [w.rows])
        let size = ck_gemm_q8_workspace_size(Int32(m), Int32(w.cols), activations.cValue)
        let status = withWorkspace(bytes: size) { workspace, count in
            x.withUnsafeBufferPointer { xp in
                y.withUnsafeMutableBufferPointer { yp in
                    ck_gemm_q8(
                        xp.baseAddress, Int32(m), Int32(w.cols), w.panels, Int32(w.rows), yp.baseAddress,
                        activations.cValue, workspace, count)
                }
            }
        }
        check(status, "matmul x \(x.shape) weight [\(w.rows), \(w.cols)]")
        return y
    }

    /// dX = dY · W, the backward-data product of `matmul`: dY [..., w.rows] → dX [..., w.cols].
    /// `.int8` runs the forward kernel on Wᵀ requantized in blocks along W's rows.
    public static func matmulBackwardData(
        _ dy: Tensor, _ w: QuantizedWeight,
        activations: ActivationPrecision = .int8
    ) -> Tensor {
        precondition(
            dy.rank >= 1 && dy.rowLength == w.rows,
            "matmulBackwardData: dy \(dy.shape) does not end in the weight's \(w.rows) outputs (weight [\(w.rows), \(w.cols)])")
        let m = dy.rowCount
        // the int8 kernel writes every element; the f32 path accumulates
        var dx =
            activations == .int8
            ? Tensor(uninitialized: Array(dy.shape.dropLast()) + [w.cols]) : Tensor(zeros: Array(dy.shape.dropLast()) + [w.cols])
        let status: ck_status
        switch activations {
        case .int8:
            let panelsT = w.transposedPanels()
            let size = ck_gemm_q8_workspace_size(Int32(m), Int32(w.rows), CK_ACT_INT8)
            status = withWorkspace(bytes: size) { workspace, count in
                dy.withUnsafeBufferPointer { dyp in
                    dx.withUnsafeMutableBufferPointer { dxp in
                        ck_gemm_q8(
                            dyp.baseAddress, Int32(m), Int32(w.rows), panelsT, Int32(w.cols), dxp.baseAddress,
                            CK_ACT_INT8, workspace, count)
                    }
                }
            }
        case .f32:
            let size = ck_gemm_q8_bwd_f32_workspace_size(Int32(w.rows))
            status = withWorkspace(bytes: size) { workspace, count in
                dy.withUnsafeBufferPointer { dyp in
                    dx.withUnsafeMutableBufferPointer { dxp in
                        ck_gemm_q8_bwd_f32(
                            dyp.baseAddress, Int32(m), Int32(w.rows), w.panels, Int32(w.cols),
                            dxp.baseAddress, workspace, count)
                    }
                }
            }
        }
        check(status, "matmulBackwardData dy \(dy.shape) weight [\(w.rows), \(w.cols)]")
        return dx
    }

    /// C = alpha · op(A) · op(B) for f32 matrices (OpenBLAS): the LoRA factors and attention.
    public static func matmul(
        _ a: Tensor, transposeA: Bool = false, _ b: Tensor, transposeB: Bool = false,
        alpha: Float = 1
    ) -> Tensor {
        precondition(a.rank == 2 && b.rank == 2, "matmul: expected matrices, got \(a.shape) and \(b.shape)")
        let m = transposeA ? a.shape[1] : a.shape[0]
        let k = transposeA ? a.shape[0] : a.shape[1]
        let kb = transposeB ? b.shape[1] : b.shape[0]
        let n = transposeB ? b.shape[0] : b.shape[1]
        precondition(
            k == kb, "matmul: inner dimensions differ: \(transposeA ? "aᵀ" : "a") \(a.shape), \(transposeB ? "bᵀ" : "b") \(b.shape)")
        var c = Tensor(zeros: [m, n])
        let status = a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                c.withUnsafeMutableBufferPointer { cp in
                    ck_sgemm(
                        transposeA ? 1 : 0, transposeB ? 1 : 0, Int32(m), Int32(n), Int32(k), alpha,
                        ap.baseAddress, Int32(a.shape[1]), bp.baseAddress, Int32(b.shape[1]), 0, cp.baseAddress, Int32(n))
                }
            }
        }
        check(status, "matmul a \(a.shape) b \(b.shape)")
        return c
    }

    /// C += alpha · op(A) · op(B) for f32 matrices: adds a low-rank product into an output,
    /// or a gradient into its accumulator.
    public static func matmulAccumulate(
        _ a: Tensor, transposeA: Bool = false, _ b: Tensor, transposeB: Bool, alpha: Float,
        into c: Tensor
    ) {
        let m = transposeA ? a.shape[1] : a.shape[0]
        let k = transposeA ? a.shape[0] : a.shape[1]
        let n = transposeB ? b.shape[0] : b.shape[1]
        let kb = transposeB ? b.shape[1] : b.shape[0]
        precondition(
            a.rank == 2 && b.rank == 2 && c.rank == 2 && k == kb && c.shape == [m, n],
            "matmulAccumulate: a\(transposeA ? "ᵀ" : "") \(a.shape), b\(transposeB ? "ᵀ" : "") \(b.shape), c \(c.shape)")
        var target = c
        let status = a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                target.withUnsafeMutableBufferPointer { cp in
                    ck_sgemm(
                        transposeA ? 1 : 0, transposeB ? 1 : 0, Int32(m), Int32(n), Int32(k), alpha, ap.baseAddress, Int32(a.shape[1]),
                        bp.baseAddress, Int32(b.shape[1]), 1, cp.baseAddress, Int32(n))
                }
            }
        }
        check(status, "matmulAccumulate a \(a.shape) b \(b.shape)")
    }

    /// y += scale · (x·Aᵀ)·Bᵀ for x [rows, in], y [rows, out], given aT = Aᵀ [in, rank] and
    /// bT = Bᵀ [rank, out]: a LoRA adapter's output at inference. A row's result is the same
    /// bits for any number of rows and threads.
    public static func loraAccumulate(_ x: Tensor, aT: Tensor, bT: Tensor, scale: Float, into y: Tensor) {
        let rows = x.rowCount
        let rank = aT.shape[1]
        precondition(
            aT.rank == 2 && bT.rank == 2 && bT.shape[0] == rank && x.rowLength == aT.shape[0]
                && y.rowCount == rows && y.rowLength == bT.shape[1],
            "loraAccumulate: x \(x.shape), Aᵀ \(aT.shape), Bᵀ \(bT.shape), y \(y.shape)")
        var target = y
        x.withUnsafeBufferPointer { xp in
            aT.withUnsafeBufferPointer { ap in
                bT.withUnsafeBufferPointer { bp in
                    target.withUnsafeMutableBufferPointer {
                        ck_lora_fwd(
                            xp.baseAddress, Int32(rows), Int32(aT.shape[0]), ap.baseAddress, Int32(rank), bp.baseAddress,
                            Int32(bT.shape[1]), scale, $0.baseAddress)
                    }
                }
            }
        }
    }

    /// Rows `ids` of an f32 table [rows, cols] → [ids, cols].
    public static func gatherRows(_ table: Tensor, _ ids: [Int32]) -> Tensor {
        precondition(
            table.rank == 2 && ids.allSatisfy { $0 >= 0 && Int($0) < table.shape[0] },
            "gatherRows: an id is outside the table's \(table.shape[0]) rows")
        let cols = table.shape[1]
        var result = Tensor(uninitialized: [ids.count, cols])
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

    /// table[ids[i]] = rows[i] for an f32 table [n, cols] and rows [ids, cols]: the inverse of gatherRows.
    public static func scatterRows(_ rows: Tensor, into table: Tensor, at ids: [Int]) {
        precondition(
            table.rank == 2 && rows.shape == [ids.count, table.shape[1]] && ids.allSatisfy { $0 >= 0 && $0 < table.shape[0] },
            "scatterRows: rows \(rows.shape) into \(table.shape)")
        let cols = table.shape[1]
        var target = table
        rows.withUnsafeBufferPointer { src in
            target.withUnsafeMutableBufferPointer { dst in
                for (i, id) in ids.enumerated() {
                    let row = UnsafeBufferPointer(rebasing: src[i * cols..<(i + 1) * cols])
                    _ = UnsafeMutableBufferPointer(rebasing: dst[id * cols..<(id + 1) * cols]).update(fromContentsOf: row)
                }
            }
        }
    }

    /// Rows `ids` of an int8 matrix, dequantized → [ids, cols].
    public static func gatherRows(_ table: QuantizedWeight, _ ids: [Int32]) -> Tensor {
        precondition(ids.allSatisfy { $0 >= 0 && Int($0) < table.rows }, "gatherRows: an id is outside the table's \(table.rows) rows")
        var result = Tensor(uninitialized: [ids.count, table.cols])
        result.withUnsafeMutableBufferPointer { dst in
            for (i, id) in ids.enumerated() {
                ck_q8_packed_dequantize(
                    table.panels, Int32(table.rows), Int32(table.cols), id, 1, 0, Int32(table.cols),
                    dst.baseAddress! + i * table.cols, Int32(table.cols))
            }
        }
        return result
    }
}
