import CKernels
import Testing

@Suite struct LoRAKernelTests {
    /// Odd sizes (no multiple of 16 but the rank 16; ranks 3, 16 and 40, under and over one
    /// group of 16) against sums in double, with the output's previous values kept; five
    /// rows split over the threads, the last shape's one row splits its outputs.
    @Test(arguments: [
        (m: 1, in: 37, out: 45, rank: 3), (m: 3, in: 100, out: 33, rank: 40), (m: 5, in: 577, out: 1537, rank: 16),
        (m: 1, in: 577, out: 4099, rank: 16),
    ])
    func addsTheLowRankProduct(shape: (m: Int, in: Int, out: Int, rank: Int)) {
        let (m, inF, out, rank) = shape
        let scale: Float = 2.5
        var rng = SeededRandom(seed: 71)
        let x = rng.floats(m * inF)
        let a = rng.floats(rank * inF)
        let b = rng.floats(out * rank)
        let y0 = rng.floats(m * out)
        var y = y0
        ck_lora_fwd(x, Int32(m), Int32(inF), transpose(a, rows: rank), Int32(rank), transpose(b, rows: out), Int32(out), scale, &y)
        var expected = [Float](repeating: 0, count: m * out)
        for i in 0..<m {
            let u = (0..<rank).map { r in (0..<inF).reduce(0.0) { $0 + Double(a[r * inF + $1]) * Double(x[i * inF + $1]) } }
            for o in 0..<out {
                let dot = (0..<rank).reduce(0.0) { $0 + Double(b[o * rank + $1]) * u[$1] }
                expected[i * out + o] = Float(Double(y0[i * out + o]) + Double(scale) * dot)
            }
        }
        let worst = worstError(y, expected)
        report("lora \(shape)", worst)
        #expect(worst <= 1e-3)
    }

    /// Each row's result is the same bits alone, in a batch, and with one or two threads
    /// (a row alone splits its 4,099 outputs over two): what keeps a sequence's text with
    /// an adapter independent of its batch.
    @Test func aRowGivesTheSameBitsInAnyBatchAndThreadCount() {
        let (m, inF, out, rank) = (9, 576, 4099, 16)
        var rng = SeededRandom(seed: 73)
        let x = rng.floats(m * inF)
        let aT = transpose(rng.floats(rank * inF), rows: rank)
        let bT = transpose(rng.floats(out * rank), rows: out)
        func run(rows: Range<Int>, threads: Int) -> [Float] {
            withKernels(isa: ck_best_isa(), threads: threads) {
                var y = [Float](repeating: 0, count: rows.count * out)
                ck_lora_fwd(
                    Array(x[rows.lowerBound * inF..<rows.upperBound * inF]), Int32(rows.count), Int32(inF), aT,
                    Int32(rank), bT, Int32(out), 0.5, &y)
                return y
            }
        }
        let batch = run(rows: 0..<m, threads: 2)
        #expect(run(rows: 0..<m, threads: 1) == batch)
        for row in [0, 4, 8] {
            #expect(run(rows: row..<row + 1, threads: 2) == Array(batch[row * out..<(row + 1) * out]))
            #expect(run(rows: row..<row + 1, threads: 1) == Array(batch[row * out..<(row + 1) * out]))
        }
    }

    /// The training step's products, op(A)·B with A as stored or transposed, new or added
    /// into C, on odd sizes (rows past a tile, columns past a vector of 16, inner sizes short
    /// and long) against sums in double; the same bits with one thread and two.
    @Test(arguments: [
        (m: 1, n: 16, k: 577, trans: false), (m: 13, n: 3, k: 37, trans: false), (m: 1029, n: 16, k: 577, trans: false),
        (m: 9, n: 1537, k: 16, trans: false), (m: 577, n: 16, k: 1029, trans: true), (m: 16, n: 579, k: 1029, trans: true),
        (m: 17, n: 40, k: 5, trans: true),
    ])
    func productMatchesDoubleSums(shape: (m: Int, n: Int, k: Int, trans: Bool)) {
        let (m, n, k, trans) = shape
        var rng = SeededRandom(seed: 79)
        let a = rng.floats(m * k) // [m, k], or [k, m] when transposed
        let b = rng.floats(k * n)
        let c0 = rng.floats(m * n)
        let alpha: Float = 0.75
        for accumulate in [false, true] {
            func run(threads: Int) -> [Float] {
                withKernels(isa: ck_best_isa(), threads: threads) {
                    var c = accumulate ? c0 : [Float](repeating: .nan, count: m * n)
                    ck_lora_product(
                        trans ? 1 : 0, Int32(m), Int32(n), Int32(k), alpha, a, Int32(trans ? m : k), b, Int32(n),
                        accumulate ? 1 : 0, &c, Int32(n))
                    return c
                }
            }
            let c = run(threads: 2)
            #expect(run(threads: 1) == c)
            var expected = [Float](repeating: 0, count: m * n)
            for i in 0..<m {
                for j in 0..<n {
                    let dot = (0..<k).reduce(0.0) { $0 + Double(trans ? a[$1 * m + i] : a[i * k + $1]) * Double(b[$1 * n + j]) }
                    expected[i * n + j] = Float((accumulate ? Double(c0[i * n + j]) : 0) + Double(alpha) * dot)
                }
            }
            let worst = worstError(c, expected)
            report("lora product \(shape) accumulate \(accumulate)", worst)
            #expect(worst <= 1e-5 * Double(k).squareRoot())
        }
    }
}

/// A row-major matrix of `rows` rows, transposed (the kernel takes Aᵀ and Bᵀ).
private func transpose(_ m: [Float], rows: Int) -> [Float] {
    let cols = m.count / rows
    return (0..<m.count).map { m[($0 % rows) * cols + $0 / rows] }
}
