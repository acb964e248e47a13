import CKernels
import Testing

struct AttentionTests {
    /// The fast kernel (sgemm per head and block of rows) against plain double loops, on
    /// shapes with tails: more rows than one block, cache offsets, GQA groups of 1, 3, 4.
    @Test(arguments: [(1, 1, 1, 1, 8, 0), (5, 4, 2, 1, 16, 0), (70, 9, 3, 3, 64, 0), (1, 9, 3, 3, 64, 37),
                      (7, 8, 2, 2, 10, 5), (130, 4, 1, 1, 32, 3)])
    func matchesTheReference(shape: (t: Int, heads: Int, kvHeads: Int, unused: Int, headDim: Int, offset: Int)) {
        var rng = SeededRandom(seed: 53)
        let s = shape.offset + shape.t, ldkv = shape.kvHeads * shape.headDim + 3  // padded rows, as a strided cache
        let q = rng.floats(shape.t * shape.heads * shape.headDim, in: -2...2)
        let k = rng.floats(s * ldkv, in: -2...2), v = rng.floats(s * ldkv)
        let scale = 1 / Float(shape.headDim).squareRoot()
        var expected = [Float](repeating: 0, count: q.count)
        ck_attention_fwd_ref(q, Int32(shape.t), Int32(shape.heads), Int32(shape.kvHeads), Int32(shape.headDim), k, v, Int32(s),
                             Int32(ldkv), scale, &expected)
        // the keys transposed, rows of s + 2 (a cache's capacity)
        let ldkt = s + 2
        var kt = [Float](repeating: 0, count: shape.kvHeads * shape.headDim * ldkt)
        for j in 0..<s { for c in 0..<(shape.kvHeads * shape.headDim) { kt[c * ldkt + j] = k[j * ldkv + c] } }
        for (keep, transposed) in [(false, false), (true, false), (false, true)] {
            var out = [Float](repeating: .nan, count: q.count)
            var probs = [Float](repeating: .nan, count: shape.heads * shape.t * s)
            var workspace = [UInt8](repeating: 0, count: ck_attention_workspace_size(Int32(shape.t), Int32(s)))
            let status = probs.withUnsafeMutableBufferPointer { pp in
                ck_attention_fwd(q, Int32(shape.t), Int32(shape.heads), Int32(shape.kvHeads), Int32(shape.headDim), k, v, Int32(s),
                                 Int32(ldkv), transposed ? kt : nil, Int32(ldkt), scale, &out, keep ? pp.baseAddress : nil,
                                 &workspace, workspace.count)
            }
            #expect(status == CK_OK)
            let worst = worstError(out, expected)
            report("attention \(shape) keep=\(keep) transposed=\(transposed)", worst)
            #expect(worst <= 1e-5)
            guard keep else { continue }
            // rows of probabilities sum to 1 over visible keys and are exactly 0 beyond them
            for h in 0..<shape.heads {
                for i in 0..<shape.t {
                    let row = probs[((h * shape.t) + i) * s..<((h * shape.t) + i + 1) * s]
                    let visible = shape.offset + i + 1
                    #expect(abs(row.prefix(visible).reduce(0, +) - 1) < 1e-5)
                    #expect(row.dropFirst(visible).allSatisfy { $0 == 0 })
                }
            }
        }
    }

    @Test func rejectsInconsistentShapes() {
        var out = [Float](repeating: 0, count: 8)
        let x = [Float](repeating: 0, count: 64)
        #expect(ck_attention_fwd(x, 2, 3, 2, 4, x, x, 2, 8, nil, 0, 1, &out, nil, nil, 0) == CK_ERR_SHAPE)  // 3 heads, 2 kv heads
        #expect(ck_attention_fwd(x, 3, 2, 2, 4, x, x, 2, 8, nil, 0, 1, &out, nil, nil, 0) == CK_ERR_SHAPE)  // fewer keys than queries
        #expect(ck_attention_fwd(x, 1, 2, 2, 4, x, x, 2, 8, x, 1, 1, &out, nil, nil, 0) == CK_ERR_SHAPE)  // kt rows too short
        #expect(ck_attention_fwd(x, 2, 2, 2, 4, x, x, 2, 8, nil, 0, 1, &out, nil, nil, 0) == CK_ERR_WORKSPACE)
    }
}
