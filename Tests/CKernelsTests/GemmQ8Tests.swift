import CKernels
import Testing

/// Shapes with tails everywhere: k and n not multiples of 32 or 16, m not a multiple of
/// the 4-row tile, one-row GEMV, sizes that cross the parallel threshold, and k past one
/// L1 pass of 24 blocks.
let gemmShapes: [(m: Int, k: Int, n: Int)] = [
    (1, 32, 16), (1, 37, 5), (1, 576, 192), (1, 1024, 600), (2, 64, 17), (3, 70, 33),
    (4, 96, 32), (5, 100, 47), (9, 300, 65), (17, 129, 161), (70, 200, 50), (6, 800, 40),
]
let seeds: [UInt64] = [1, 2, 3]

@Suite struct GemmQ8Tests {
    @Test(arguments: supportedISAs())
    func int8PathMatchesIntegerReference(isa: ck_isa) {
        var worst = 0.0
        for shape in gemmShapes {
            for seed in seeds {
                var rng = SeededRandom(seed: seed)
                let w = PackedWeights(rows: shape.n, cols: shape.k, rng: &rng)
                let x = rng.floats(shape.m * shape.k, in: -3...3)
                var expected = [Float](repeating: 0, count: shape.m * shape.n)
                ck_gemm_ref(CK_TYPE_Q8_0, x, Int32(shape.m), Int32(shape.k), w.packed, Int32(shape.n), &expected, CK_ACT_INT8)
                let got = withKernels(isa: isa) { gemmQ8(x, m: shape.m, k: shape.k, w.packed, n: shape.n, mode: CK_ACT_INT8) }
                let (_, magnitude) = referenceProduct(x, m: shape.m, k: shape.k, w.dequantized, n: shape.n)
                // Same integer block dots and the same f32 FMA order: only a few ulps of the
                // accumulated magnitude may differ.
                let error = worstError(got, expected, scale: magnitude.map { $0 + 1e-30 })
                #expect(error <= 1e-6, "\(String(cString: ck_isa_name(isa))) \(shape) seed \(seed)")
                worst = max(worst, error)
            }
        }
        report("int8 GEMM vs integer reference (\(String(cString: ck_isa_name(isa)))), relative to sum|x·w|", worst)
    }

    @Test(arguments: supportedISAs())
    func int8PathIsWithinActivationQuantizationBound(isa: ck_isa) {
        var worst = 0.0
        for shape in gemmShapes {
            var rng = SeededRandom(seed: 7)
            let w = PackedWeights(rows: shape.n, cols: shape.k, rng: &rng)
            let x = rng.floats(shape.m * shape.k, in: -3...3)
            let got = withKernels(isa: isa) { gemmQ8(x, m: shape.m, k: shape.k, w.packed, n: shape.n, mode: CK_ACT_INT8) }
            let (exact, magnitude) = referenceProduct(x, m: shape.m, k: shape.k, w.dequantized, n: shape.n)
            let kb = Int(ck_q8_blocks_per_row(Int32(shape.k)))
            let d = activationScales(x, m: shape.m, k: shape.k)
            for i in 0..<shape.m {
                for o in 0..<shape.n {
                    // Rounding x to the grid of its block moves it by at most d/2, so the
                    // product moves by at most sum_b d_b/2 · sum_{j in b} |w_j|, plus f32
                    // accumulation of kb block terms.
                    var bound = 0.0
                    for j in 0..<shape.k {
                        bound += Double(d[i * kb + j / 32]) / 2 * Double(abs(w.dequantized[o * shape.k + j]))
                    }
                    bound += Double(kb + 1) * 1.2e-7 * magnitude[i * shape.n + o]
                    let error = Double(abs(got[i * shape.n + o] - exact[i * shape.n + o]))
                    #expect(error <= bound, "\(shape) at [\(i), \(o)]")
                    worst = max(worst, error / max(bound, 1e-30))
                }
            }
        }
        report("int8 GEMM error as a fraction of its quantization bound (\(String(cString: ck_isa_name(isa))))", worst)
    }

    @Test func exactF32PathMatchesDoubleProduct() {
        var worst = 0.0
        for threads in [1, 2] {
            for shape in gemmShapes {
                var rng = SeededRandom(seed: 11)
                let w = PackedWeights(rows: shape.n, cols: shape.k, rng: &rng)
                let x = rng.floats(shape.m * shape.k)
                let got = withKernels(isa: ck_best_isa(), threads: threads) {
                    gemmQ8(x, m: shape.m, k: shape.k, w.packed, n: shape.n, mode: CK_ACT_F32)
                }
                let (exact, magnitude) = referenceProduct(x, m: shape.m, k: shape.k, w.dequantized, n: shape.n)
                // f32 accumulation of k terms: |error| <= k · eps · sum|terms|.
                let error = worstError(got, exact, scale: magnitude.map { Double(shape.k) * 1.2e-7 * $0 + 1e-30 })
                #expect(error <= 1, "\(shape) threads \(threads)")
                worst = max(worst, error)
            }
        }
        report("exact-f32 GEMM error as a fraction of k·eps·sum|x·w|", worst)
    }

    @Test(arguments: supportedISAs())
    func backwardDataOnTransposedPackIsWithinBound(isa: ck_isa) {
        var worst = 0.0
        for shape in gemmShapes {
            var rng = SeededRandom(seed: 5)
            // W is [n, k]; dY [m, n]; dX = dY · W is [m, k].
            let w = PackedWeights(rows: shape.n, cols: shape.k, rng: &rng)
            let dy = rng.floats(shape.m * shape.n)
            let (packedT, wT) = w.transposedPack()
            // Requantizing W^T in blocks of 32 along n moves each weight by at most half
            // its new block's step d = amax/127, plus up to 127 steps of the step's own
            // rounding to fp16 (the scale is stored as Q8_0 stores it).
            let nb = Int(ck_q8_blocks_per_row(Int32(shape.n)))
            for kk in 0..<shape.k {
                for b in 0..<nb {
                    let range = (b * 32)..<min(shape.n, b * 32 + 32)
                    let amax = range.map { abs(w.dequantized[$0 * shape.k + kk]) }.max() ?? 0
                    let step = amax / 127
                    let stored = ck_half_to_float(ck_float_to_half(step))
                    for o in range {
                        let moved = abs(wT[kk * shape.n + o] - w.dequantized[o * shape.k + kk])
                        #expect(Double(moved) <= Double(amax) / 254 * (1 + 1e-5) + 127 * Double(abs(stored - step)) + 1e-12)
                    }
                }
            }
            let got = withKernels(isa: isa) { gemmQ8(dy, m: shape.m, k: shape.n, packedT, n: shape.k, mode: CK_ACT_INT8) }
            var wTransposedExact = [Float](repeating: 0, count: shape.k * shape.n)
            for o in 0..<shape.n { for kk in 0..<shape.k { wTransposedExact[kk * shape.n + o] = w.dequantized[o * shape.k + kk] } }
            let (exact, magnitude) = referenceProduct(dy, m: shape.m, k: shape.n, wTransposedExact, n: shape.k)
            let d = activationScales(dy, m: shape.m, k: shape.n)
            for i in 0..<shape.m {
                for kk in 0..<shape.k {
                    var bound = Double(nb + 1) * 1.2e-7 * magnitude[i * shape.k + kk]
                    for o in 0..<shape.n {
                        let requantized = Double(wT[kk * shape.n + o])
                        bound += Double(abs(dy[i * shape.n + o])) * abs(requantized - Double(w.dequantized[o * shape.k + kk]))
                        bound += Double(d[i * nb + o / 32]) / 2 * abs(requantized)
                    }
                    let error = Double(abs(got[i * shape.k + kk] - exact[i * shape.k + kk]))
                    #expect(error <= bound, "\(shape) at [\(i), \(kk)]")
                    worst = max(worst, error / max(bound, 1e-30))
                }
            }
        }
        report("int8 backward-data error as a fraction of its quantization bound (\(String(cString: ck_isa_name(isa))))", worst)
    }

    @Test func exactBackwardDataMatchesFiniteDifferences() {
        // L(x) = sum(r ⊙ (x W^T)); dL/dx = r · W is what the backward-data kernel computes.
        for shape in gemmShapes where shape.m * shape.k <= 2000 {
            var rng = SeededRandom(seed: 13)
            let w = PackedWeights(rows: shape.n, cols: shape.k, rng: &rng)
            let x = rng.floats(shape.m * shape.k)
            let r = rng.floats(shape.m * shape.n)
            var dx = [Float](repeating: .nan, count: shape.m * shape.k)
            var workspace = [UInt8](repeating: 0, count: ck_gemm_bwd_f32_workspace_size(Int32(shape.n)))
            let status = workspace.withUnsafeMutableBytes { ws in
                ck_gemm_bwd_f32(
                    CK_TYPE_Q8_0, r, Int32(shape.m), Int32(shape.n), w.packed, Int32(shape.k), &dx, ws.baseAddress, ws.count)
            }
            #expect(status == CK_OK)
            checkGradient(x, dx, "backward-data \(shape)") { x in
                weightedSum(gemmQ8(x, m: shape.m, k: shape.k, w.packed, n: shape.n, mode: CK_ACT_F32), r)
            }
        }
    }

    @Test(arguments: supportedISAs())
    func activationTiesRoundToEvenOnEveryPath(isa: ck_isa) {
        // amax 127 makes the block scale exactly 1, so x/d lands on exact ties.
        let x: [Float] = [127, 2.5, 3.5, -2.5, 0.5, -0.5, 1.5]
        let k = x.count
        var blocks = [ck_block_q8_0](repeating: ck_block_q8_0(), count: 1)
        _ = ck_quantize_q8_0([Float](repeating: 1, count: k), 1, Int32(k), &blocks)
        var packed = [ck_panel_block](repeating: ck_panel_block(), count: 1)
        ck_pack(CK_TYPE_Q8_0, blocks, 1, Int32(k), &packed)
        let got = withKernels(isa: isa) { gemmQ8(x, m: 1, k: k, packed, n: 1, mode: CK_ACT_INT8) }
        // Half to even: 127 + 2 + 4 - 2 + 0 - 0 + 2 = 133, each times the weight's 127.
        let weightScale = Float(1.0 / 127.0).roundedToHalf()
        #expect(got[0] == Float(133 * 127) * weightScale)
    }

    @Test func rejectsBadArguments() {
        var rng = SeededRandom(seed: 3)
        let w = PackedWeights(rows: 20, cols: 40, rng: &rng)
        let x = rng.floats(2 * 40)
        var y = [Float](repeating: 0, count: 2 * 20)
        var small = [UInt8](repeating: 0, count: 8)
        #expect(
            small.withUnsafeMutableBytes { ck_gemm(CK_TYPE_Q8_0, x, 2, 40, w.packed, 20, &y, CK_ACT_INT8, $0.baseAddress, $0.count) }
                == CK_ERR_WORKSPACE)
        #expect(ck_gemm(CK_TYPE_Q8_0, x, -1, 40, w.packed, 20, &y, CK_ACT_INT8, nil, 0) == CK_ERR_SHAPE)
        var ws = [UInt8](repeating: 0, count: ck_gemm_workspace_size(2, 40, CK_ACT_INT8))
        #expect(
            ws.withUnsafeMutableBytes { ck_gemm(CK_TYPE_Q8_0, nil, 2, 40, w.packed, 20, &y, CK_ACT_INT8, $0.baseAddress, $0.count) }
                == CK_ERR_NULL
        )
        #expect(ck_set_isa(ck_isa(rawValue: 99)) == CK_ERR_UNSUPPORTED)
    }
}

extension Float {
    /// This value rounded to IEEE half precision and back, as a Q8_0 scale is stored.
    func roundedToHalf() -> Float { ck_half_to_float(ck_float_to_half(self)) }
}
