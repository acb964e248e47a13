import CKernels
import Testing

// Nested: one test forces the thread count, process-wide state other kernel suites set too.
@Suite struct AttentionTests {
    /// The fast kernel (sgemm per head and block of rows, direct loops for one row, a kv
    /// head's whole group at once over runs of keys when decoding over a cache) against plain
    /// double loops, on shapes with tails: more rows than one block, cache offsets (700: eleven
    /// runs), GQA groups of 1, 3, 4, 8 and 10 (more than one group chunk), head sizes of 64 and 128
    /// (Llama 2's: two pieces of 64 dims) and others; keys as rows,
    /// transposed f32, and transposed half with half values (checked against the reference on
    /// the half-rounded keys and values).
    @Test(arguments: [
        (1, 1, 1, 1, 8, 0), (5, 4, 2, 1, 16, 0), (70, 9, 3, 3, 64, 0), (1, 9, 3, 3, 64, 37),
        (7, 8, 2, 2, 10, 5), (130, 4, 1, 1, 32, 3), (1, 9, 3, 3, 64, 700), (1, 10, 1, 1, 24, 40), (1, 16, 2, 2, 8, 3),
        (1, 4, 4, 4, 128, 69),
    ])
    func matchesTheReference(shape: (t: Int, heads: Int, kvHeads: Int, unused: Int, headDim: Int, offset: Int)) {
        var rng = SeededRandom(seed: 53)
        let s = shape.offset + shape.t
        let kvWidth = shape.kvHeads * shape.headDim
        let q = rng.floats(shape.t * shape.heads * shape.headDim, in: -2...2)
        let k = rng.floats(s * kvWidth, in: -2...2)
        let v = rng.floats(s * kvWidth)
        let kHalf = k.map { ck_float_to_half($0) }
        let vHalf = v.map { ck_float_to_half($0) }
        let scale = 1 / Float(shape.headDim).squareRoot()
        func reference(_ k: [Float], _ v: [Float]) -> [Float] {
            var out = [Float](repeating: 0, count: q.count)
            ck_attention_fwd_ref(
                q, Int32(shape.t), Int32(shape.heads), Int32(shape.kvHeads), Int32(shape.headDim), k, v, Int32(s),
                Int32(kvWidth), scale, &out)
            return out
        }
        let exact = reference(k, v)
        let rounded = reference(kHalf.map(ck_half_to_float), vHalf.map(ck_half_to_float))
        // a cache's layout: keys transposed in rows of capacity s + 2
        let ldkt = s + 2
        var kt = [Float](repeating: 0, count: kvWidth * ldkt)
        var ktHalf = [UInt16](repeating: 0, count: kvWidth * ldkt)
        for j in 0..<s {
            for c in 0..<kvWidth {
                kt[c * ldkt + j] = k[j * kvWidth + c]
                ktHalf[c * ldkt + j] = kHalf[j * kvWidth + c]
            }
        }
        enum Layout: CaseIterable { case rows, transposed, half }
        for layout in Layout.allCases {
            for keep in [false, true] {
                var out = [Float](repeating: .nan, count: q.count)
                var probs = [Float](repeating: .nan, count: shape.heads * shape.t * s)
                let half: Int32 = layout == .half ? 1 : 0
                var workspace = [UInt8](
                    repeating: 0,
                    count: ck_attention_workspace_size(Int32(shape.t), Int32(s), Int32(shape.heads), Int32(shape.headDim), half))
                let status = probs.withUnsafeMutableBufferPointer { pp -> ck_status in
                    func run(_ kp: UnsafePointer<Float>?, _ vp: UnsafeRawPointer, _ ktp: UnsafeRawPointer?) -> ck_status {
                        ck_attention_fwd(
                            q, Int32(shape.t), Int32(shape.heads), Int32(shape.kvHeads), Int32(shape.headDim), kp, vp, Int32(s),
                            Int32(kvWidth), ktp, Int32(ldkt), half, scale, &out, keep ? pp.baseAddress : nil, &workspace,
                            workspace.count)
                    }
                    switch layout {
                    case .rows:
                        return k.withUnsafeBufferPointer { kp in v.withUnsafeBytes { run(kp.baseAddress, $0.baseAddress!, nil) } }
                    case .transposed:
                        return v.withUnsafeBytes { vp in kt.withUnsafeBytes { run(nil, vp.baseAddress!, $0.baseAddress) } }
                    case .half:
                        return vHalf.withUnsafeBytes { vp in ktHalf.withUnsafeBytes { run(nil, vp.baseAddress!, $0.baseAddress) } }
                    }
                }
                #expect(status == CK_OK)
                let worst = worstError(out, layout == .half ? rounded : exact)
                report("attention \(shape) \(layout) keep=\(keep)", worst)
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
    }

    /// Several sequences over their own caches in one call, each against the reference
    /// alone: decoding rows over one and three runs of keys, a block and a tail (70 rows),
    /// different offsets and cache capacities, f32 and half caches, GQA groups of 3, 8 and 10
    /// (more than one group chunk).
    @Test(arguments: [false, true], [(heads: 9, kvHeads: 3), (heads: 16, kvHeads: 2), (heads: 10, kvHeads: 1)])
    func cachedBatchMatchesTheReferencePerSequence(half: Bool, shape: (heads: Int, kvHeads: Int)) {
        var rng = SeededRandom(seed: 71)
        let heads = shape.heads
        let kvHeads = shape.kvHeads
        let headDim = 24
        let kvWidth = kvHeads * headDim
        let ldq = heads * headDim
        let decoding = (0..<8).map { (t: 1, offset: 19 * $0) }
        let sequences = [(t: 1, offset: 37), (t: 70, offset: 0), (t: 5, offset: 130)] + decoding
        let scale = 1 / Float(headDim).squareRoot()
        var q: [Float] = []
        var expected: [Float] = []
        var values: [[UInt8]] = []
        var keys: [[UInt8]] = []
        var ldkt: [Int32] = []
        for (t, offset) in sequences {
            let s = t + offset
            let capacity = s + 3
            let rows = rng.floats(t * ldq, in: -2...2)
            var k = rng.floats(s * kvWidth, in: -2...2)
            var v = rng.floats(s * kvWidth)
            if half { // the reference sees the values a half cache holds
                k = k.map { ck_half_to_float(ck_float_to_half($0)) }
                v = v.map { ck_half_to_float(ck_float_to_half($0)) }
            }
            var out = [Float](repeating: 0, count: rows.count)
            ck_attention_fwd_ref(
                rows, Int32(t), Int32(heads), Int32(kvHeads), Int32(headDim), k, v, Int32(s), Int32(kvWidth), scale, &out)
            q += rows
            expected += out
            // the cache's layout: values as rows, keys transposed in rows of `capacity`
            let kt = (0..<kvWidth * capacity).map { i in i % capacity < s ? k[(i % capacity) * kvWidth + i / capacity] : 0 }
            func bytes(_ x: [Float]) -> [UInt8] {
                half ? x.map { ck_float_to_half($0) }.withUnsafeBytes { Array($0) } : x.withUnsafeBytes { Array($0) }
            }
            values.append(bytes(v + [Float](repeating: 0, count: 3 * kvWidth)))
            keys.append(bytes(kt))
            ldkt.append(Int32(capacity))
        }
        let t = sequences.map { Int32($0.t) }
        let s = sequences.map { Int32($0.t + $0.offset) }
        var workspace = [UInt8](
            repeating: 0,
            count: ck_attention_cached_batch_workspace_size(Int32(sequences.count), t, s, Int32(heads), Int32(headDim), half ? 1 : 0))
        var out = [Float](repeating: .nan, count: q.count)
        let status = withPointers(values) { vp in
            withPointers(keys) { kp in
                ck_attention_fwd_cached_batch(
                    Int32(sequences.count), q, t, Int32(heads), Int32(kvHeads), Int32(headDim), vp, s,
                    Int32(kvWidth), kp, ldkt, half ? 1 : 0, scale, &out, &workspace, workspace.count)
            }
        }
        #expect(status == CK_OK)
        let worst = worstError(out, expected)
        report("attention cached batch half=\(half) \(shape)", worst)
        #expect(worst <= 1e-5)
        // one thread gives the same bits: the runs of keys do not depend on the thread count
        var serial = [Float](repeating: .nan, count: q.count)
        withKernels(isa: ck_best_isa(), threads: 1) {
            let size = ck_attention_cached_batch_workspace_size(
                Int32(sequences.count), t, s, Int32(heads), Int32(headDim), half ? 1 : 0)
            var workspace = [UInt8](repeating: 0, count: size)
            let status = withPointers(values) { vp in
                withPointers(keys) { kp in
                    ck_attention_fwd_cached_batch(
                        Int32(sequences.count), q, t, Int32(heads), Int32(kvHeads), Int32(headDim), vp, s,
                        Int32(kvWidth), kp, ldkt, half ? 1 : 0, scale, &serial, &workspace, workspace.count)
                }
            }
            #expect(status == CK_OK)
        }
        #expect(serial == out)
        // a decoding row alone: bit for bit what it got in the batch
        let alone = 3
        let row = sequences.prefix(alone).reduce(0) { $0 + $1.t } * ldq
        var single = [Float](repeating: .nan, count: ldq)
        let singleStatus = withPointers([values[alone]]) { vp in
            withPointers([keys[alone]]) { kp in
                ck_attention_fwd_cached_batch(
                    1, Array(q[row..<row + ldq]), [1], Int32(heads), Int32(kvHeads), Int32(headDim), vp,
                    [s[alone]], Int32(kvWidth), kp, [ldkt[alone]], half ? 1 : 0, scale, &single, &workspace,
                    workspace.count)
            }
        }
        #expect(singleStatus == CK_OK && single == Array(out[row..<row + ldq]))
        #expect(
            ck_attention_fwd_cached_batch(
                Int32(sequences.count), q, t, Int32(heads), Int32(kvHeads), Int32(headDim), nil, s,
                Int32(kvWidth), nil, ldkt, 0, scale, &out, &workspace, workspace.count) == CK_ERR_NULL)
    }

    /// Stable base addresses of byte arrays for the length of `body`.
    func withPointers<R>(_ arrays: [[UInt8]], _ body: ([UnsafeRawPointer?]) -> R) -> R {
        guard let first = arrays.first else { return body([]) }
        return first.withUnsafeBytes { head in
            withPointers(Array(arrays.dropFirst())) { rest in body([head.baseAddress] + rest) }
        }
    }

    @Test func cacheStoreWritesRowsAndTransposedColumns() {
        var rng = SeededRandom(seed: 59)
        let tokens = 3
        let width = 5
        let capacity = 7
        let position = 2
        let k = rng.floats(tokens * width)
        let v = rng.floats(tokens * width)
        var kt = [Float](repeating: 0, count: width * capacity)
        var vc = [Float](repeating: 0, count: capacity * width)
        var ktHalf = [UInt16](repeating: 0, count: width * capacity)
        var vHalf = [UInt16](repeating: 0, count: capacity * width)
        ck_kv_store(k, v, Int32(tokens), Int32(width), &kt, Int32(capacity), &vc, Int32(position), 0)
        ck_kv_store(k, v, Int32(tokens), Int32(width), &ktHalf, Int32(capacity), &vHalf, Int32(position), 1)
        for i in 0..<tokens {
            for c in 0..<width {
                #expect(kt[c * capacity + position + i] == k[i * width + c] && vc[(position + i) * width + c] == v[i * width + c])
                #expect(ktHalf[c * capacity + position + i] == ck_float_to_half(k[i * width + c]))
                #expect(vHalf[(position + i) * width + c] == ck_float_to_half(v[i * width + c]))
            }
        }
        #expect(vc.prefix(position * width).allSatisfy { $0 == 0 })
    }

    @Test func rejectsInconsistentShapes() {
        var out = [Float](repeating: 0, count: 8)
        let x = [Float](repeating: 0, count: 64)
        #expect(ck_attention_fwd(x, 2, 3, 2, 4, x, x, 2, 8, nil, 0, 0, 1, &out, nil, nil, 0) == CK_ERR_SHAPE) // 3 heads, 2 kv heads
        #expect(ck_attention_fwd(x, 3, 2, 2, 4, x, x, 2, 8, nil, 0, 0, 1, &out, nil, nil, 0) == CK_ERR_SHAPE) // fewer keys than queries
        #expect(ck_attention_fwd(x, 1, 2, 2, 4, x, x, 2, 8, x, 1, 0, 1, &out, nil, nil, 0) == CK_ERR_SHAPE) // kt rows too short
        #expect(ck_attention_fwd(x, 1, 2, 2, 4, nil, x, 2, 8, nil, 0, 1, 1, &out, nil, nil, 0) == CK_ERR_SHAPE) // half without kt
        #expect(ck_attention_fwd(x, 2, 2, 2, 4, x, x, 2, 8, nil, 0, 0, 1, &out, nil, nil, 0) == CK_ERR_WORKSPACE)
    }

    /// The backward against plain double loops on odd shapes and GQA groups of 1, 3, 4, and
    /// against finite differences of the forward; one and two threads agree bit for bit.
    @Test(arguments: [(1, 1, 1, 8), (5, 4, 2, 16), (37, 9, 3, 64), (70, 8, 2, 10), (3, 4, 1, 33)])
    func backwardMatchesReferenceAndFiniteDifferences(shape: (t: Int, heads: Int, kvHeads: Int, headDim: Int)) {
        var rng = SeededRandom(seed: 61)
        let (t, heads, kvHeads, hd) = shape
        let kvWidth = kvHeads * hd
        let scale = 1 / Float(hd).squareRoot()
        let q = rng.floats(t * heads * hd, in: -2...2)
        let k = rng.floats(t * kvWidth, in: -2...2)
        let v = rng.floats(t * kvWidth)
        let r = rng.floats(t * heads * hd)
        func forward(_ q: [Float], _ k: [Float], _ v: [Float]) -> (out: [Float], probs: [Float]) {
            var out = [Float](repeating: 0, count: q.count)
            var probs = [Float](repeating: 0, count: heads * t * t)
            let status = ck_attention_fwd(
                q, Int32(t), Int32(heads), Int32(kvHeads), Int32(hd), k, v, Int32(t), Int32(kvWidth), nil, 0, 0,
                scale, &out, &probs, nil, 0)
            #expect(status == CK_OK)
            return (out, probs)
        }
        let probs = forward(q, k, v).probs
        var expected = (
            q: [Float](repeating: 0, count: q.count), k: [Float](repeating: 0, count: k.count), v: [Float](repeating: 0, count: v.count)
        )
        ck_attention_bwd_ref(
            q, k, v, probs, r, Int32(t), Int32(heads), Int32(kvHeads), Int32(hd), scale, &expected.q, &expected.k, &expected.v)
        var results: [[Float]] = []
        for threads in [1, 2] {
            withKernels(isa: ck_best_isa(), threads: threads) {
                var dq = [Float](repeating: .nan, count: q.count)
                var dk = [Float](repeating: .nan, count: k.count)
                var dv = dk
                var workspace = [UInt8](repeating: 0, count: ck_attention_bwd_workspace_size(Int32(t), Int32(heads), Int32(hd)))
                let status = ck_attention_bwd(
                    q, k, v, probs, r, Int32(t), Int32(heads), Int32(kvHeads), Int32(hd), scale, &dq, &dk, &dv,
                    &workspace, workspace.count)
                #expect(status == CK_OK)
                let worst = max(worstError(dq, expected.q), worstError(dk, expected.k), worstError(dv, expected.v))
                report("attention backward \(shape) \(threads) threads vs reference", worst)
                #expect(worst <= 2e-5)
                results.append(dq + dk + dv)
            }
        }
        #expect(results[0] == results[1])
        checkGradient(q, expected.q, "attention dq \(shape)") { weightedSum(forward($0, k, v).out, r) }
        checkGradient(k, expected.k, "attention dk \(shape)") { weightedSum(forward(q, $0, v).out, r) }
        checkGradient(v, expected.v, "attention dv \(shape)") { weightedSum(forward(q, k, $0).out, r) }
    }
}
