import CKernels
import Testing

/// The 4- and 6-bit formats the kernels run on, with Q8_0 in the same tests.
let blockTypes: [ck_type] = [CK_TYPE_Q8_0, CK_TYPE_Q4_0, CK_TYPE_Q4_1, CK_TYPE_Q4_K, CK_TYPE_Q6_K]

/// Shapes with tails everywhere (m not a multiple of the row tiles, n of the 16-row panel,
/// k of 32 and of 256), one-row GEMV, and K past one L1 pass of 24 blocks, also where the
/// few-row driver (up to 64 rows) hands a tile all of K at once.
let blockShapes: [(m: Int, k: Int, n: Int)] = [
    (1, 256, 16), (1, 37, 5), (1, 576, 192), (2, 512, 17), (3, 300, 33), (5, 100, 47), (9, 800, 65), (17, 129, 161),
    (70, 264, 50), (40, 1000, 70),
    // n past 512: the backward's z rows take the 16-block quantizer and its tail
    (6, 70, 1100),
    // n past 4096: the backward runs each strip a chunk of outputs at a time
    (7, 45, 4133),
]

func typeName(_ type: ck_type) -> String {
    switch type {
    case CK_TYPE_Q8_0: "Q8_0"
    case CK_TYPE_Q4_0: "Q4_0"
    case CK_TYPE_Q4_1: "Q4_1"
    case CK_TYPE_Q4_K: "Q4_K"
    default: "Q6_K"
    }
}

/// Random GGUF blocks of one type for a [rows, cols] matrix (ceil(cols / block) blocks a
/// row, every bit random but the scales, kept finite and small), packed, with the values
/// ck_dequantize gives the blocks.
struct RandomBlocks {
    let type: ck_type
    let rows: Int, cols: Int
    var blocks: [UInt8]
    var packed: [UInt8]
    var dequantized: [Float] // [rows, cols]

    /// `fill`: every byte of the blocks but their fp16 scales (nil: random).
    init(type: ck_type, rows: Int, cols: Int, rng: inout SeededRandom, fill: UInt8? = nil) {
        self.type = type
        self.rows = rows
        self.cols = cols
        let blockValues = Int(ck_type_block_size(type))
        let blockBytes = Int(ck_type_block_bytes(type))
        let perRow = (cols + blockValues - 1) / blockValues
        blocks = (0..<rows * perRow * blockBytes).map { _ in fill ?? UInt8.random(in: 0...255, using: &rng) }
        func half(_ value: Float) -> (UInt8, UInt8) {
            let h = ck_float_to_half(value)
            return (UInt8(h & 0xFF), UInt8(h >> 8))
        }
        // where each block's fp16 scales lie (Q6_K's d is its last field)
        let scaleOffsets: [Int] =
            switch type {
            case CK_TYPE_Q8_0, CK_TYPE_Q4_0: [0]
            case CK_TYPE_Q4_1, CK_TYPE_Q4_K: [0, 2]
            default: [208]
            }
        for b in 0..<rows * perRow {
            for (i, offset) in scaleOffsets.enumerated() {
                // Q4_1's minimum is signed; K-quant scales multiply 6- or 8-bit sub-scales
                let magnitude: Float = type == CK_TYPE_Q4_K || type == CK_TYPE_Q6_K ? 0.002 : 0.05
                let value = Float.random(in: 0.2...1, using: &rng) * magnitude * (i == 1 && type == CK_TYPE_Q4_1 ? -4 : 1)
                (blocks[b * blockBytes + offset], blocks[b * blockBytes + offset + 1]) = half(value)
            }
        }
        var full = [Float](repeating: 0, count: rows * perRow * blockValues)
        #expect(ck_dequantize(type, blocks, &full, Int64(full.count)) == CK_OK)
        dequantized = (0..<rows * cols).map { full[($0 / cols) * perRow * blockValues + $0 % cols] }
        packed = [UInt8](repeating: 0, count: ck_packed_bytes(type, Int32(rows), Int32(cols)))
        #expect(ck_pack(type, blocks, Int32(rows), Int32(cols), &packed) == CK_OK)
    }

    /// The scale and minimum of the weight at (row, col).
    func scale(row: Int, col: Int) -> (scale: Float, min: Float) {
        var scale: Float = 0
        var min: Float = 0
        ck_packed_scale(type, packed, Int32(rows), Int32(cols), Int32(row), Int32(col), &scale, &min)
        return (scale, min)
    }
}

/// ck_gemm on packed blocks with a workspace of exactly the size it asks for.
func gemm(_ type: ck_type, _ x: [Float], m: Int, k: Int, _ w: [UInt8], n: Int, mode: ck_act_mode = CK_ACT_INT8) -> [Float] {
    var y = [Float](repeating: .nan, count: m * n)
    var workspace = [UInt8](repeating: 0, count: ck_gemm_workspace_size(Int32(m), Int32(k), mode))
    let status = workspace.withUnsafeMutableBytes { ws in
        ck_gemm(type, x, Int32(m), Int32(k), w, Int32(n), &y, mode, ws.baseAddress, ws.count)
    }
    #expect(status == CK_OK)
    return y
}

/// ck_gemm_bwd: dX [m, k] = dY [m, n] · W on the forward pack.
func gemmBackward(_ type: ck_type, _ dy: [Float], m: Int, n: Int, _ w: [UInt8], k: Int) -> [Float] {
    var dx = [Float](repeating: .nan, count: m * k)
    var workspace = [UInt8](repeating: 0, count: ck_gemm_bwd_workspace_size(Int32(m), Int32(n), Int32(k)))
    let status = workspace.withUnsafeMutableBytes { ws in
        ck_gemm_bwd(type, dy, Int32(m), Int32(n), w, Int32(k), &dx, ws.baseAddress, ws.count)
    }
    #expect(status == CK_OK)
    return dx
}

/// A matrix [rows, sum of widths] as column parts, each its own buffer (ck_parts), for `body`.
func withParts<R>(_ matrix: [Float], rows: Int, widths: [Int], _ body: (UnsafePointer<ck_parts>) -> R) -> (R, [Float]) {
    let total = widths.reduce(0, +)
    var starts = [0]
    for w in widths.dropLast() { starts.append(starts.last! + w) }
    let buffers = widths.map { UnsafeMutablePointer<Float>.allocate(capacity: max($0 * rows, 1)) }
    defer { for buffer in buffers { buffer.deallocate() } }
    for (p, w) in widths.enumerated() {
        for i in 0..<rows { for j in 0..<w { buffers[p][i * w + j] = matrix[i * total + starts[p] + j] } }
    }
    let cols = widths.map(Int32.init)
    let data: [UnsafeMutablePointer<Float>?] = buffers
    let result = cols.withUnsafeBufferPointer { c in
        data.withUnsafeBufferPointer { d in
            var parts = ck_parts(count: Int32(widths.count), cols: c.baseAddress, data: d.baseAddress)
            return body(&parts)
        }
    }
    var joined = [Float](repeating: .nan, count: rows * total)
    for (p, w) in widths.enumerated() {
        for i in 0..<rows { for j in 0..<w { joined[i * total + starts[p] + j] = buffers[p][i * w + j] } }
    }
    return (result, joined)
}

@Suite struct GemmBlockTests {
    @Test(arguments: blockTypes)
    func packedPanelsDequantizeAsTheGGUFBlocks(type: ck_type) {
        for shape in blockShapes {
            var rng = SeededRandom(seed: 21)
            let w = RandomBlocks(type: type, rows: shape.n, cols: shape.k, rng: &rng)
            var got = [Float](repeating: .nan, count: shape.n * shape.k)
            ck_packed_dequantize(
                type, w.packed, Int32(shape.n), Int32(shape.k), 0, Int32(shape.n), 0, Int32(shape.k), &got, Int32(shape.k))
            #expect(got == w.dequantized, "\(typeName(type)) \(shape)")
            // every weight is scale·(u − zero) + min with u an integer in the format's range
            let zero: Float = type == CK_TYPE_Q8_0 ? 128 : type == CK_TYPE_Q4_0 ? 8 : type == CK_TYPE_Q6_K ? 32 : 0
            let top: Float = type == CK_TYPE_Q8_0 ? 255 : type == CK_TYPE_Q6_K ? 63 : 15
            for (o, j) in [(0, 0), (shape.n - 1, shape.k - 1), (shape.n / 2, shape.k / 3)] {
                let (scale, min) = w.scale(row: o, col: j)
                let u = (w.dequantized[o * shape.k + j] - min) / scale + zero
                #expect(
                    abs(u - u.rounded()) < 1e-3 && u.rounded() >= 0 && u.rounded() <= top, "\(typeName(type)) [\(o), \(j)] u = \(u)")
            }
        }
    }

    @Test(arguments: blockTypes, supportedISAs())
    func forwardMatchesTheScalarPathBitForBit(type: ck_type, isa: ck_isa) {
        for shape in blockShapes {
            for threads in [1, 2] {
                var rng = SeededRandom(seed: 22)
                let w = RandomBlocks(type: type, rows: shape.n, cols: shape.k, rng: &rng)
                let x = rng.floats(shape.m * shape.k, in: -3...3)
                var expected = [Float](repeating: 0, count: shape.m * shape.n)
                ck_gemm_ref(type, x, Int32(shape.m), Int32(shape.k), w.packed, Int32(shape.n), &expected, CK_ACT_INT8)
                let got = withKernels(isa: isa, threads: threads) { gemm(type, x, m: shape.m, k: shape.k, w.packed, n: shape.n) }
                #expect(got == expected, "\(typeName(type)) \(String(cString: ck_isa_name(isa))) \(shape) threads \(threads)")
            }
        }
    }

    /// The largest stored values (nibbles 15, 6-bit 63, int8 127) against activations at
    /// ±127, a row each sign: the int16 pair sums a SIMD path adds up before widening
    /// (AVX2: 8 × 2·15·127 for nibbles) stay exact, as the scalar path's int32 sums are.
    @Test(arguments: blockTypes, supportedISAs())
    func forwardOfTheLargestValuesMatchesTheScalarPath(type: ck_type, isa: ck_isa) {
        let (m, k, n) = (4, 520, 33)
        var rng = SeededRandom(seed: 25)
        let w = RandomBlocks(type: type, rows: n, cols: k, rng: &rng, fill: type == CK_TYPE_Q8_0 ? 0x7F : 0xFF)
        let x = (0..<m * k).map { Float($0 / k % 2 == 0 ? 1 : -1) }
        var expected = [Float](repeating: 0, count: m * n)
        ck_gemm_ref(type, x, Int32(m), Int32(k), w.packed, Int32(n), &expected, CK_ACT_INT8)
        let got = withKernels(isa: isa, threads: 1) { gemm(type, x, m: m, k: k, w.packed, n: n) }
        #expect(got == expected, "\(typeName(type)) \(String(cString: ck_isa_name(isa)))")
    }

    @Test(arguments: blockTypes)
    func forwardIsWithinTheActivationQuantizationBound(type: ck_type) {
        var worst = 0.0
        for shape in blockShapes {
            var rng = SeededRandom(seed: 23)
            let w = RandomBlocks(type: type, rows: shape.n, cols: shape.k, rng: &rng)
            let x = rng.floats(shape.m * shape.k, in: -3...3)
            let got = gemm(type, x, m: shape.m, k: shape.k, w.packed, n: shape.n)
            let (exact, magnitude) = referenceProduct(x, m: shape.m, k: shape.k, w.dequantized, n: shape.n)
            let kb = (shape.k + 31) / 32
            let d = activationScales(x, m: shape.m, k: shape.k)
            for i in 0..<shape.m {
                for o in 0..<shape.n {
                    // x moves by at most d/2 on its block's grid; f32 sums of 2 terms per block
                    var bound = 0.0
                    for j in 0..<shape.k { bound += Double(d[i * kb + j / 32]) / 2 * Double(abs(w.dequantized[o * shape.k + j])) }
                    bound += Double(2 * kb + 1) * 1.2e-7 * magnitude[i * shape.n + o]
                    let error = Double(abs(got[i * shape.n + o] - exact[i * shape.n + o]))
                    #expect(error <= bound, "\(typeName(type)) \(shape) at [\(i), \(o)]")
                    worst = max(worst, error / max(bound, 1e-30))
                }
            }
        }
        report("\(typeName(type)) GEMM error as a fraction of its quantization bound", worst)
    }

    @Test(arguments: blockTypes)
    func exactF32PathMatchesTheDoubleProduct(type: ck_type) {
        for shape in blockShapes {
            var rng = SeededRandom(seed: 24)
            let w = RandomBlocks(type: type, rows: shape.n, cols: shape.k, rng: &rng)
            let x = rng.floats(shape.m * shape.k)
            let got = gemm(type, x, m: shape.m, k: shape.k, w.packed, n: shape.n, mode: CK_ACT_F32)
            let (exact, magnitude) = referenceProduct(x, m: shape.m, k: shape.k, w.dequantized, n: shape.n)
            let error = worstError(got, exact, scale: magnitude.map { Double(shape.k) * 1.2e-7 * $0 + 1e-30 })
            #expect(error <= 1, "\(typeName(type)) \(shape)")
        }
    }

    @Test(arguments: blockTypes, supportedISAs())
    func backwardMatchesTheScalarPathBitForBit(type: ck_type, isa: ck_isa) {
        for shape in blockShapes {
            for threads in [1, 2] {
                var rng = SeededRandom(seed: 25)
                let w = RandomBlocks(type: type, rows: shape.n, cols: shape.k, rng: &rng)
                let dy = rng.floats(shape.m * shape.n)
                var expected = [Float](repeating: .nan, count: shape.m * shape.k)
                ck_gemm_bwd_ref(type, dy, Int32(shape.m), Int32(shape.n), w.packed, Int32(shape.k), &expected)
                let got = withKernels(isa: isa, threads: threads) {
                    gemmBackward(type, dy, m: shape.m, n: shape.n, w.packed, k: shape.k)
                }
                #expect(got == expected, "\(typeName(type)) \(String(cString: ck_isa_name(isa))) \(shape) threads \(threads)")
            }
        }
    }

    @Test(arguments: blockTypes)
    func backwardIsWithinTheQuantizationBoundOfItsRequantizedWeightsAndDY(type: ck_type) {
        var worst = 0.0
        for shape in blockShapes {
            var rng = SeededRandom(seed: 26)
            let w = RandomBlocks(type: type, rows: shape.n, cols: shape.k, rng: &rng)
            let dy = rng.floats(shape.m * shape.n)
            let got = gemmBackward(type, dy, m: shape.m, n: shape.n, w.packed, k: shape.k)
            var wT = [Float](repeating: 0, count: shape.k * shape.n)
            for o in 0..<shape.n { for j in 0..<shape.k { wT[j * shape.n + o] = w.dequantized[o * shape.k + j] } }
            let (exact, magnitude) = referenceProduct(dy, m: shape.m, k: shape.n, wT, n: shape.k)
            let nb = (shape.n + 31) / 32
            // v = w − min is requantized per column over blocks of 32 outputs (step A/127, A
            // the block's largest |v|) and dY per block of 32 (step D/127): the product moves
            // by at most |dY|·A/254 + D/254·(|v| + A/254) per output, plus f32 sums of nb
            // blocks and of the minimums' n terms, and v's own rounding beside the minimum
            var v = [Double](repeating: 0, count: shape.n * shape.k)
            var minimum = v
            for o in 0..<shape.n {
                for j in 0..<shape.k {
                    let min = w.scale(row: o, col: j).min
                    v[o * shape.k + j] = Double(w.dequantized[o * shape.k + j] - min)
                    minimum[o * shape.k + j] = Double(abs(min))
                }
            }
            for i in 0..<shape.m {
                for j in 0..<shape.k {
                    var bound = Double(nb + shape.n + 1) * 1.2e-7 * magnitude[i * shape.k + j]
                    for c in 0..<nb {
                        let outputs = (c * 32)..<min(shape.n, c * 32 + 32)
                        let a = outputs.map { abs(v[$0 * shape.k + j]) }.max() ?? 0
                        let d = outputs.map { Double(abs(dy[i * shape.n + $0])) }.max() ?? 0
                        for o in outputs {
                            let y = Double(abs(dy[i * shape.n + o]))
                            bound += (y * a / 254 + d / 254 * (abs(v[o * shape.k + j]) + a / 254)) * (1 + 1e-5)
                            bound += y * 1.2e-7 * minimum[o * shape.k + j]
                        }
                    }
                    let error = Double(abs(got[i * shape.k + j] - exact[i * shape.k + j]))
                    #expect(error <= bound, "\(typeName(type)) \(shape) at [\(i), \(j)]: \(error) > \(bound)")
                    worst = max(worst, error / max(bound, 1e-30))
                }
            }
        }
        report("\(typeName(type)) backward-data error as a fraction of its quantization bound", worst)
    }

    @Test(arguments: blockTypes)
    func exactBackwardMatchesTheDoubleProduct(type: ck_type) {
        for shape in blockShapes {
            var rng = SeededRandom(seed: 27)
            let w = RandomBlocks(type: type, rows: shape.n, cols: shape.k, rng: &rng)
            let dy = rng.floats(shape.m * shape.n)
            var dx = [Float](repeating: .nan, count: shape.m * shape.k)
            var workspace = [UInt8](repeating: 0, count: ck_gemm_bwd_f32_workspace_size(Int32(shape.n)))
            let status = workspace.withUnsafeMutableBytes { ws in
                ck_gemm_bwd_f32(type, dy, Int32(shape.m), Int32(shape.n), w.packed, Int32(shape.k), &dx, ws.baseAddress, ws.count)
            }
            #expect(status == CK_OK)
            var wT = [Float](repeating: 0, count: shape.k * shape.n)
            for o in 0..<shape.n { for j in 0..<shape.k { wT[j * shape.n + o] = w.dequantized[o * shape.k + j] } }
            let (exact, magnitude) = referenceProduct(dy, m: shape.m, k: shape.n, wT, n: shape.k)
            let error = worstError(dx, exact, scale: magnitude.map { Double(shape.n) * 1.2e-7 * $0 + 1e-30 })
            #expect(error <= 1, "\(typeName(type)) \(shape)")
        }
    }

    /// Products over matrices in parts (a fused projection's inputs and outputs, each its own
    /// buffer) give the bits of the joined matrices: X split along k and Y along n forward,
    /// dY along n backward; decoding, few-row and many-row drivers; a last part of any width.
    @Test(arguments: blockTypes, supportedISAs())
    func productsOnPartsMatchTheJoinedMatricesBitForBit(type: ck_type, isa: ck_isa) {
        let (kWidths, nWidths) = ([64, 32, 45], [32, 0, 96, 21])
        let (k, n) = (kWidths.reduce(0, +), nWidths.reduce(0, +))
        for m in [1, 5, 70] {
            var rng = SeededRandom(seed: 26)
            let w = RandomBlocks(type: type, rows: n, cols: k, rng: &rng)
            let x = rng.floats(m * k, in: -3...3)
            let dy = rng.floats(m * n)
            let label = "\(typeName(type)) \(String(cString: ck_isa_name(isa))) m \(m)"
            withKernels(isa: isa) {
                let joined = gemm(type, x, m: m, k: k, w.packed, n: n)
                let empty = [Float](repeating: .nan, count: m * n)
                var workspace = [UInt8](repeating: 0, count: ck_gemm_workspace_size(Int32(m), Int32(k), CK_ACT_INT8))
                let ((status, y), _) = withParts(x, rows: m, widths: kWidths) { xp in
                    withParts(empty, rows: m, widths: nWidths) { yp in
                        workspace.withUnsafeMutableBytes {
                            ck_gemm_parts(type, xp, Int32(m), Int32(k), w.packed, Int32(n), yp, CK_ACT_INT8, $0.baseAddress, $0.count)
                        }
                    }
                }
                #expect(status == CK_OK && y == joined, "forward \(label)")

                let joinedDx = gemmBackward(type, dy, m: m, n: n, w.packed, k: k)
                var dx = [Float](repeating: .nan, count: m * k)
                var bwdWorkspace = [UInt8](repeating: 0, count: ck_gemm_bwd_workspace_size(Int32(m), Int32(n), Int32(k)))
                let (bwdStatus, _) = withParts(dy, rows: m, widths: nWidths) { dyp in
                    bwdWorkspace.withUnsafeMutableBytes {
                        ck_gemm_bwd_parts(type, dyp, Int32(m), Int32(n), w.packed, Int32(k), &dx, $0.baseAddress, $0.count)
                    }
                }
                #expect(bwdStatus == CK_OK && dx == joinedDx, "backward \(label)")
            }
        }
    }

    /// A part narrower than a whole block before the last, or widths that do not add up to
    /// the product's dimension, are refused rather than read out of place.
    @Test func partsOfTheWrongWidthsAreRefused() {
        var rng = SeededRandom(seed: 27)
        let w = RandomBlocks(type: CK_TYPE_Q8_0, rows: 48, cols: 64, rng: &rng)
        let x = rng.floats(3 * 64)
        var workspace = [UInt8](repeating: 0, count: ck_gemm_bwd_workspace_size(3, 48, 64) + ck_gemm_workspace_size(3, 64, CK_ACT_INT8))
        for widths in [[16, 32], [40, 8], [32, 32]] {
            let ((status, _), _) = withParts(x, rows: 3, widths: [64]) { xp in
                withParts([Float](repeating: 0, count: 3 * widths.reduce(0, +)), rows: 3, widths: widths) { yp in
                    workspace.withUnsafeMutableBytes {
                        ck_gemm_parts(CK_TYPE_Q8_0, xp, 3, 64, w.packed, 48, yp, CK_ACT_INT8, $0.baseAddress, $0.count)
                    }
                }
            }
            #expect(status == CK_ERR_SHAPE, "forward output widths \(widths)")
            var dx = [Float](repeating: 0, count: 3 * 64)
            let (bwd, _) = withParts([Float](repeating: 1, count: 3 * widths.reduce(0, +)), rows: 3, widths: widths) { dyp in
                workspace.withUnsafeMutableBytes {
                    ck_gemm_bwd_parts(CK_TYPE_Q8_0, dyp, 3, 48, w.packed, 64, &dx, $0.baseAddress, $0.count)
                }
            }
            #expect(bwd == CK_ERR_SHAPE, "backward input widths \(widths)")
        }
    }

    @Test func unsupportedTypesAreRefused() {
        var y = [Float](repeating: 0, count: 4)
        var ws = [UInt8](repeating: 0, count: 4096)
        let x = [Float](repeating: 1, count: 64)
        #expect(ck_packed_bytes(CK_TYPE_F16, 4, 64) == 0)
        #expect(ck_pack(CK_TYPE_BF16, x, 4, 64, &ws) == CK_ERR_UNSUPPORTED)
        #expect(
            ws.withUnsafeMutableBytes { ck_gemm(CK_TYPE_F32, x, 1, 64, $0.baseAddress, 4, &y, CK_ACT_INT8, $0.baseAddress, $0.count) }
                == CK_ERR_UNSUPPORTED)
        #expect(
            ws.withUnsafeMutableBytes { ck_gemm_bwd(CK_TYPE_F16, x, 1, 4, $0.baseAddress, 64, &y, $0.baseAddress, $0.count) }
                == CK_ERR_UNSUPPORTED)
    }
}
