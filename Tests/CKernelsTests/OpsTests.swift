import CKernels
import Foundation
import Testing

@Suite(.serialized) struct OpsTests {
    @Test(arguments: [(1, 7), (3, 64), (5, 577), (40, 576)])
    func rmsNorm(shape: (t: Int, d: Int)) {
        var rng = SeededRandom(seed: 31)
        let x = rng.floats(shape.t * shape.d, in: -2...2)
        let g = rng.floats(shape.d, in: 0.5...1.5)
        let r = rng.floats(shape.t * shape.d)
        func forward(_ x: [Float]) -> (y: [Float], rstd: [Float]) {
            var y = [Float](repeating: 0, count: x.count)
            var rstd = [Float](repeating: 0, count: shape.t)
            ck_rmsnorm_fwd(x, g, Int32(shape.t), Int32(shape.d), 1e-5, &y, &rstd)
            return (y, rstd)
        }
        let (y, rstd) = forward(x)
        var expected = [Float](repeating: 0, count: x.count)
        for i in 0..<shape.t {
            let row = x[(i * shape.d)..<((i + 1) * shape.d)]
            let inv = 1 / (row.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(shape.d) + 1e-5).squareRoot()
            for j in 0..<shape.d { expected[i * shape.d + j] = Float(Double(x[i * shape.d + j]) * inv * Double(g[j])) }
        }
        // f32 sum of d squares then a handful of roundings
        #expect(worstError(y, expected) <= Double(shape.d + 8) * 1.2e-7 * 4)
        var dx = [Float](repeating: 0, count: x.count)
        var dg = [Float](repeating: 0, count: shape.d)
        ck_rmsnorm_bwd(r, x, g, rstd, Int32(shape.t), Int32(shape.d), &dx, &dg)
        checkGradient(x, dx, "rmsnorm dx \(shape)") { weightedSum(forward($0).y, r) }
        // dg: the same loss as a function of g
        var expectedDg = [Float](repeating: 0, count: shape.d)
        for i in 0..<shape.t { for j in 0..<shape.d { expectedDg[j] += r[i * shape.d + j] * x[i * shape.d + j] * rstd[i] } }
        #expect(worstError(dg, expectedDg) <= 1e-4 * Double(shape.t))
    }

    @Test func ropeNeoxMatchesRotateHalfAndNormMatchesItUnderThePermutation() {
        let t = 5
        let heads = 3
        let hd = 64
        let theta: Float = 100_000
        let pos: [Int32] = [0, 1, 7, 300, 8191]
        var rng = SeededRandom(seed: 41)
        let x = rng.floats(t * heads * hd)
        var invFreq = [Float](repeating: 0, count: hd / 2)
        ck_rope_inv_freq(theta, Int32(hd), &invFreq)
        var neox = x
        ck_rope_fwd(&neox, Int32(t), Int32(heads), Int32(hd), Int32(hd), pos, invFreq, CK_ROPE_NEOX)
        // transformers: q*cos + rotate_half(q)*sin with cos/sin repeated over both halves
        var expected = x
        for i in 0..<t {
            for h in 0..<heads {
                let base = (i * heads + h) * hd
                for p in 0..<(hd / 2) {
                    let invFreq = 1 / pow(Double(theta), Double(2 * p) / Double(hd))
                    let angle = Double(pos[i]) * invFreq
                    let a = Double(x[base + p])
                    let b = Double(x[base + p + hd / 2])
                    expected[base + p] = Float(a * cos(angle) - b * sin(angle))
                    expected[base + p + hd / 2] = Float(b * cos(angle) + a * sin(angle))
                }
            }
        }
        // angles are f32 as in transformers: at position 8191 one ulp of the angle is
        // ~5e-4 rad, which bounds the difference to the f64 rotation
        let worst = worstError(neox, expected)
        report("rope NEOX vs f64 rotate_half", worst)
        #expect(worst <= 2e-3)
        // GGUF rows are permuted (new 2i = old i, new 2i+1 = old i + hd/2): NORM rope on the
        // permuted vector must equal NEOX rope on the original, permuted.
        func permute(_ v: [Float]) -> [Float] {
            var out = v
            for row in 0..<(t * heads) {
                for p in 0..<(hd / 2) {
                    out[row * hd + 2 * p] = v[row * hd + p]
                    out[row * hd + 2 * p + 1] = v[row * hd + p + hd / 2]
                }
            }
            return out
        }
        var norm = permute(x)
        ck_rope_fwd(&norm, Int32(t), Int32(heads), Int32(hd), Int32(hd), pos, invFreq, CK_ROPE_NORM)
        #expect(norm == permute(neox))
    }

    @Test(arguments: [CK_ROPE_NORM, CK_ROPE_NEOX])
    func ropeBackwardIsTheAdjoint(mode: ck_rope_mode) {
        // For a linear map R, <r, R x> = <R^T r, x>; ck_rope_bwd must be R^T.
        let t = 4
        let heads = 2
        let hd = 10
        let nRot = 8
        let pos: [Int32] = [3, 0, 11, 2]
        var rng = SeededRandom(seed: 43)
        let x = rng.floats(t * heads * hd)
        let r = rng.floats(t * heads * hd)
        var invFreq = [Float](repeating: 0, count: nRot / 2)
        ck_rope_inv_freq(10_000, Int32(nRot), &invFreq)
        var rx = x
        ck_rope_fwd(&rx, Int32(t), Int32(heads), Int32(hd), Int32(nRot), pos, invFreq, mode)
        var rtr = r
        ck_rope_bwd(&rtr, Int32(t), Int32(heads), Int32(hd), Int32(nRot), pos, invFreq, mode)
        #expect(abs(weightedSum(rx, r) - weightedSum(x, rtr)) <= 1e-5)
        // dims past n_rot pass through unchanged
        for row in 0..<(t * heads) { #expect(rx[row * hd + 8] == x[row * hd + 8] && rx[row * hd + 9] == x[row * hd + 9]) }
        checkGradient(x, rtr, "rope \(mode)") { v in
            var y = v
            ck_rope_fwd(&y, Int32(t), Int32(heads), Int32(hd), Int32(nRot), pos, invFreq, mode)
            return weightedSum(y, r)
        }
    }

    @Test(arguments: [(1, 1, 0), (4, 4, 0), (3, 9, 6), (6, 33, 27), (5, 3, -1)])
    func causalSoftmax(shape: (t: Int, cols: Int, offset: Int)) {
        var rng = SeededRandom(seed: 47)
        let s = rng.floats(shape.t * shape.cols, in: -4...4)
        let r = rng.floats(shape.t * shape.cols)
        let scale: Float = 0.125
        func forward(_ s: [Float]) -> [Float] {
            var p = s
            ck_softmax_causal_fwd(&p, Int32(shape.t), Int32(shape.cols), Int32(shape.offset), scale)
            return p
        }
        let p = forward(s)
        for i in 0..<shape.t {
            let visible = max(0, min(shape.cols, i + shape.offset + 1))
            let row = (0..<shape.cols).map { Double(s[i * shape.cols + $0]) * Double(scale) }
            let mx = row[0..<visible].max() ?? 0
            let z = row[0..<visible].reduce(0) { $0 + exp($1 - mx) }
            for j in 0..<shape.cols {
                let expected = j < visible ? exp(row[j] - mx) / z : 0
                #expect(abs(Double(p[i * shape.cols + j]) - expected) <= 1e-6, "\(shape) [\(i), \(j)]")
            }
        }
        var ds = [Float](repeating: 0, count: s.count)
        ck_softmax_bwd(p, r, Int32(shape.t), Int32(shape.cols), &ds)
        // ds is the gradient with respect to the scaled scores
        checkGradient(s, ds.map { $0 * scale }, "softmax \(shape)") { weightedSum(forward($0), r) }
    }

    /// Odd sizes, below and above the size that splits the work over the threads.
    @Test(arguments: [7, 70_001]) func addIsElementwise(n: Int) {
        var rng = SeededRandom(seed: 61)
        let y = rng.floats(n)
        let x0 = rng.floats(n)
        var x = x0
        ck_add(y, Int64(n), &x)
        #expect(x == zip(x0, y).map { $0 + $1 })
    }

    @Test(arguments: [(3, 5), (401, 333)]) func copyMatrixMovesABlockOfColumns(shape: (rows: Int, cols: Int)) {
        let (rows, cols) = shape
        let ldSrc = cols + 7
        let ldDst = cols + 3
        let start = 2
        var rng = SeededRandom(seed: 67)
        let src = rng.floats(rows * ldSrc)
        var dst = [Float](repeating: -1, count: rows * ldDst)
        src.withUnsafeBufferPointer { ck_copy_matrix($0.baseAddress! + start, Int32(ldSrc), Int32(rows), Int32(cols), &dst, Int32(ldDst)) }
        for i in 0..<rows {
            #expect(Array(dst[(i * ldDst)..<(i * ldDst + cols)]) == Array(src[(i * ldSrc + start)..<(i * ldSrc + start + cols)]))
            #expect(dst[(i * ldDst + cols)..<((i + 1) * ldDst)].allSatisfy { $0 == -1 })
        }
    }

    /// 70,001 values run split over the threads, in uneven shares.
    @Test(arguments: [1000, 70_001]) func swiglu(n: Int) {
        var rng = SeededRandom(seed: 53)
        let a = rng.floats(n, in: -6...6)
        let b = rng.floats(n, in: -2...2)
        let r = rng.floats(n)
        var m = [Float](repeating: 0, count: n)
        ck_swiglu_fwd(a, b, Int64(n), &m)
        let expected = (0..<n).map { Float(Double(a[$0]) / (1 + exp(-Double(a[$0]))) * Double(b[$0])) }
        #expect(worstError(m, expected) <= 1e-5)
        var da = [Float](repeating: 0, count: n)
        var db = [Float](repeating: 0, count: n)
        ck_swiglu_bwd(a, b, r, Int64(n), &da, &db)
        func forward(_ a: [Float], _ b: [Float]) -> [Float] {
            var out = [Float](repeating: 0, count: n)
            ck_swiglu_fwd(a, b, Int64(n), &out)
            return out
        }
        checkGradient(a, da, "swiglu da") { weightedSum(forward($0, b), r) }
        checkGradient(b, db, "swiglu db") { weightedSum(forward(a, $0), r) }
    }

    /// 6 × 30,001 logits run their rows over the threads.
    @Test(arguments: [50, 30_001]) func crossEntropyWithIgnoredPositions(v: Int) {
        let t = 6
        var rng = SeededRandom(seed: 59)
        let logits = rng.floats(t * v, in: -5...5)
        let targets: [Int32] = [3, -100, 49, 0, -1, 17]
        func forward(_ z: [Float]) -> (mean: Double, lse: [Float], loss: [Float]) {
            var loss = [Float](repeating: 0, count: t)
            var lse = [Float](repeating: 0, count: t)
            let counted = ck_cross_entropy_fwd(z, targets, Int32(t), Int32(v), &loss, &lse)
            #expect(counted == 4)
            return (loss.reduce(0) { $0 + Double($1) } / Double(counted), lse, loss)
        }
        let (_, lse, loss) = forward(logits)
        for i in 0..<t {
            guard targets[i] >= 0 else {
                #expect(loss[i] == 0)
                continue
            }
            let row = (0..<v).map { Double(logits[i * v + $0]) }
            let expected = log(row.reduce(0) { $0 + exp($1) }) - row[Int(targets[i])]
            #expect(abs(Double(loss[i]) - expected) <= 1e-5)
        }
        var dz = [Float](repeating: .nan, count: t * v)
        ck_cross_entropy_bwd(logits, targets, lse, Int32(t), Int32(v), 1 / 4, &dz)
        #expect(dz[v..<(2 * v)].allSatisfy { $0 == 0 })
        checkGradient(logits, dz, "cross-entropy") { forward($0).mean }
        // written over the logits themselves (as the loss does), the same bits
        var inPlace = logits
        inPlace.withUnsafeMutableBufferPointer {
            ck_cross_entropy_bwd($0.baseAddress, targets, lse, Int32(t), Int32(v), 1 / 4, $0.baseAddress)
        }
        #expect(inPlace == dz)
        var out = [Float](repeating: 0, count: 1)
        var lseOut = [Float](repeating: 0, count: 1)
        #expect(ck_cross_entropy_fwd(logits, [Int32(v)], 1, Int32(v), &out, &lseOut) == -1)
    }
}
