import CKernels

/// How the backward-data product dX = dY · W reads a frozen weight.
public enum BackwardDataMode: String, Sendable, Codable, CaseIterable {
    /// dY times each weight row's scale, quantized to int8 per 32 outputs, against the
    /// forward blocks as stored: no memory beyond the weights.
    case direct
    /// The forward int8 kernel on Wᵀ requantized to Q8_0, built once per weight: faster, at
    /// the cost of a second copy of every weight the backward pass runs through (int8 only).
    case transposedCopy = "copy"
    /// f32 products on dequantized tiles: exact for the stored weights (reference runs).
    case exact
}

/// How a product with quantized weights treats its activations.
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
        return product(x, rows: w.cols, into: w.rows, w: "weight [\(w.rows), \(w.cols)] \(w.type.rawValue)") { x, m, y, workspace in
            ck_gemm(
                w.type.cValue, x, Int32(m), Int32(w.cols), w.panels, Int32(w.rows), y, activations.cValue, workspace.pointer,
                workspace.count)
        } workspace: { m in
            ck_gemm_workspace_size(Int32(m), Int32(w.cols), activations.cValue)
        }
    }

    /// dX = dY · W, the backward-data product of `matmul`: dY [..., w.rows] → dX [..., w.cols].
    public static func matmulBackwardData(_ dy: Tensor, _ w: QuantizedWeight, mode: BackwardDataMode) -> Tensor {
        precondition(
            dy.rank >= 1 && dy.rowLength == w.rows,
            "matmulBackwardData: dy \(dy.shape) does not end in the weight's \(w.rows) outputs (weight [\(w.rows), \(w.cols)])")
        guard mode == .exact else {
            let rows = matmulBackwardData(parts: [dy.reshaped([dy.rowCount, w.rows])], w, mode: mode)
            return rows.reshaped(Array(dy.shape.dropLast()) + [w.cols])
        }
        let (n, k) = (Int32(w.rows), Int32(w.cols))
        return product(dy, rows: w.rows, into: w.cols, w: "weight [\(w.rows), \(w.cols)] \(w.type.rawValue)") { dy, m, dx, ws in
            ck_gemm_bwd_f32(w.type.cValue, dy, Int32(m), n, w.panels, k, dx, ws.pointer, ws.count)
        } workspace: { _ in
            ck_gemm_bwd_f32_workspace_size(n)
        }
    }

    /// Whether matrices split into column parts of these widths can go to the kernels as they
    /// are (`ck_parts`): every width but the last a whole number of 32-value blocks.
    private static func takesParts(_ widths: [Int]) -> Bool { widths.dropLast().allSatisfy { $0 % 32 == 0 } }

    /// `matmul` of x [rows, w.cols] into Y's columns in parts of `widths` (adding up to
    /// w.rows), each a new [rows, width] tensor: a fused projection's outputs (q, k, v; gate,
    /// up) as they are used, written in place by the kernel, or split from one product when a
    /// width before the last is not a whole number of blocks.
    static func matmul(_ x: Tensor, _ w: QuantizedWeight, parts widths: [Int]) -> [Tensor] {
        precondition(
            x.rank == 2 && x.rowLength == w.cols && widths.reduce(0, +) == w.rows,
            "matmul: x \(x.shape) into parts \(widths) of weight [\(w.rows), \(w.cols)]")
        guard takesParts(widths) else {
            let y = matmul(x, w)
            var start = 0
            return widths.map { width in
                defer { start += width }
                return y.columns(start..<start + width)
            }
        }
        let m = x.rowCount
        let ys = widths.map { Tensor(uninitialized: [m, $0]) }
        let status = withWorkspace(bytes: ck_gemm_workspace_size(Int32(m), Int32(w.cols), CK_ACT_INT8)) { pointer, count in
            withParts([x], writing: false) { xp in
                withParts(ys, writing: true) { yp in
                    ck_gemm_parts(w.type.cValue, xp, Int32(m), Int32(w.cols), w.panels, Int32(w.rows), yp, CK_ACT_INT8, pointer, count)
                }
            }
        }
        check(status, "x \(x.shape) · weight [\(w.rows), \(w.cols)] \(w.type.rawValue) into parts \(widths)")
        return ys
    }

    /// `matmulBackwardData` of dY given in column parts (each [rows, width], in the order of
    /// W's rows), read in place by the kernel; joined first for the exact mode, which has no
    /// kernel for parts, or when a width before the last is not a whole number of blocks.
    static func matmulBackwardData(parts dys: [Tensor], _ w: QuantizedWeight, mode: BackwardDataMode) -> Tensor {
        let m = dys.first?.rowCount ?? 0
        let widths = dys.map(\.rowLength)
        precondition(
            dys.allSatisfy { $0.rank == 2 && $0.rowCount == m } && widths.reduce(0, +) == w.rows,
            "matmulBackwardData: dy parts \(dys.map(\.shape)) for weight [\(w.rows), \(w.cols)]")
        if mode == .exact || !takesParts(widths) { return matmulBackwardData(Tensor(concatenatingColumns: dys), w, mode: mode) }
        precondition(
            mode != .transposedCopy || w.type == .q8_0, "matmulBackwardData: a transposed copy needs int8 weights, not \(w.type.rawValue)")
        let (n, k) = (Int32(w.rows), Int32(w.cols))
        let dx = Tensor(uninitialized: [m, w.cols])
        let bytes = mode == .direct ? ck_gemm_bwd_workspace_size(Int32(m), n, k) : ck_gemm_workspace_size(Int32(m), n, CK_ACT_INT8)
        let panelsT = mode == .transposedCopy ? w.transposedPanels() : nil
        let status = withWorkspace(bytes: bytes) { pointer, count in
            withParts(dys, writing: false) { dyp in
                withParts([dx], writing: true) { dxp in
                    guard let panelsT else {
                        return ck_gemm_bwd_parts(w.type.cValue, dyp, Int32(m), n, w.panels, k, dxp.pointee.data[0], pointer, count)
                    }
                    return ck_gemm_parts(CK_TYPE_Q8_0, dyp, Int32(m), n, panelsT, k, dxp, CK_ACT_INT8, pointer, count)
                }
            }
        }
        check(status, "dy parts \(dys.map(\.shape)) · weight [\(w.rows), \(w.cols)] \(w.type.rawValue)")
        return dx
    }

    /// Tensors as the column parts of one matrix (`ck_parts`) for one kernel call.
    private static func withParts<R>(_ tensors: [Tensor], writing: Bool, _ body: (UnsafePointer<ck_parts>) -> R) -> R {
        let cols = tensors.map { Int32($0.rowLength) }
        return Tensor.withBasePointers(tensors, writing: writing) { pointers in
            let data: [UnsafeMutablePointer<Float>?] = pointers
            return cols.withUnsafeBufferPointer { c in
                data.withUnsafeBufferPointer { d in
                    var parts = ck_parts(count: Int32(tensors.count), cols: c.baseAddress, data: d.baseAddress)
                    return body(&parts)
                }
            }
        }
    }

    /// Runs one packed-weight kernel over x [..., rows] into a new y [..., outputs] (every
    /// element written) with the workspace it asks for; a failure traps naming the shapes.
    private static func product(
        _ x: Tensor, rows: Int, into outputs: Int, w: @autoclosure () -> String,
        _ kernel: (UnsafePointer<Float>?, Int, UnsafeMutablePointer<Float>?, (pointer: UnsafeMutableRawPointer, count: Int)) -> ck_status,
        workspace size: (Int) -> Int
    ) -> Tensor {
        let m = x.rowCount
        var y = Tensor(uninitialized: Array(x.shape.dropLast()) + [outputs])
        let status = withWorkspace(bytes: size(m)) { pointer, count in
            x.withUnsafeBufferPointer { xp in
                y.withUnsafeMutableBufferPointer { yp in kernel(xp.baseAddress, m, yp.baseAddress, (pointer, count)) }
            }
        }
        check(status, "x \(x.shape) · \(w())")
        return y
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

    /// alpha · op(A) · B for f32 matrices, added into `c` when given (and returned), else a new
    /// matrix: the products of a LoRA adapter's training step, one side of each the rank. Each
    /// element is summed in order by one thread, the same bits for any rows and thread count.
    @discardableResult
    static func loraProduct(_ a: Tensor, transposeA: Bool = false, _ b: Tensor, alpha: Float = 1, into c: Tensor? = nil)
        -> Tensor
    {
        let m = transposeA ? a.shape[1] : a.shape[0]
        let k = transposeA ? a.shape[0] : a.shape[1]
        precondition(
            a.rank == 2 && b.rank == 2 && b.shape[0] == k && c.map { $0.shape == [m, b.shape[1]] } != false,
            "loraProduct: a\(transposeA ? "ᵀ" : "") \(a.shape), b \(b.shape), c \(c.map { "\($0.shape)" } ?? "new")")
        var target = c ?? Tensor(uninitialized: [m, b.shape[1]])
        a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                target.withUnsafeMutableBufferPointer { cp in
                    ck_lora_product(
                        transposeA ? 1 : 0, Int32(m), Int32(b.shape[1]), Int32(k), alpha, ap.baseAddress, Int32(a.shape[1]),
                        bp.baseAddress, Int32(b.shape[1]), c == nil ? 0 : 1, cp.baseAddress, Int32(b.shape[1]))
                }
            }
        }
        return target
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

    /// Rows `ids` of a quantized matrix, dequantized → [ids, cols].
    public static func gatherRows(_ table: QuantizedWeight, _ ids: [Int32]) -> Tensor {
        precondition(ids.allSatisfy { $0 >= 0 && Int($0) < table.rows }, "gatherRows: an id is outside the table's \(table.rows) rows")
        var result = Tensor(uninitialized: [ids.count, table.cols])
        result.withUnsafeMutableBufferPointer { dst in
            for (i, id) in ids.enumerated() {
                ck_packed_dequantize(
                    table.type.cValue, table.panels, Int32(table.rows), Int32(table.cols), id, 1, 0, Int32(table.cols),
                    dst.baseAddress! + i * table.cols, Int32(table.cols))
            }
        }
        return result
    }
}
