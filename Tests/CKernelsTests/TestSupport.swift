import CKernels
import Foundation
import Testing

/// SplitMix64: a seeded generator so every failure reproduces.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed &+ 0x9E37_79B9_7F4A_7C15 }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func floats(_ count: Int, in range: ClosedRange<Float> = -1...1) -> [Float] {
        (0..<count).map { _ in Float.random(in: range, using: &self) }
    }
}

/// Every instruction-set path this CPU can run; each test runs on all of them.
func supportedISAs() -> [ck_isa] {
    [CK_ISA_SCALAR, CK_ISA_AVX2, CK_ISA_AVX512_VNNI].filter { ck_isa_supported($0) != 0 }
}

/// Runs `body` with this thread's kernel calls forced to `isa` and `threads` threads (the
/// calling thread's own settings: tests running beside it keep theirs), then clears them.
func withKernels<T>(isa: ck_isa, threads: Int = 2, _ body: () throws -> T) rethrows -> T {
    #expect(ck_set_thread_isa(isa) == CK_OK)
    ck_set_thread_num_threads(Int32(threads))
    defer { ck_clear_thread_settings() }
    return try body()
}

/// Largest |a - b| / scale over paired elements, reported with the test's name so the
/// worst error seen is printed on every run.
func worstError(_ a: [Float], _ b: [Float], scale: [Double]? = nil) -> Double {
    precondition(a.count == b.count)
    var worst = 0.0
    for i in a.indices {
        let s = scale?[i] ?? 1
        worst = max(worst, Double(abs(a[i] - b[i])) / s)
    }
    return worst
}

func report(_ label: String, _ value: Double) {
    print("worst \(label): \(value)")
}

/// Weights quantized to Q8_0 and packed, with their exact dequantized values.
struct PackedWeights {
    let rows: Int, cols: Int
    var blocks: [ck_block_q8_0]
    var packed: [ck_panel_block]
    var dequantized: [Float] // [rows, cols]

    init(rows: Int, cols: Int, rng: inout SeededRandom) {
        self.rows = rows
        self.cols = cols
        let values = rng.floats(rows * cols)
        let kb = Int(ck_q8_blocks_per_row(Int32(cols)))
        blocks = Array(repeating: ck_block_q8_0(), count: rows * kb)
        _ = ck_quantize_q8_0(values, Int32(rows), Int32(cols), &blocks)
        dequantized = Array(repeating: 0, count: rows * cols)
        ck_dequantize_q8_0(blocks, Int32(rows), Int32(cols), &dequantized)
        let panelBlocks = Int(ck_packed_bytes(CK_TYPE_Q8_0, Int32(rows), Int32(cols))) / MemoryLayout<ck_panel_block>.stride
        packed = Array(repeating: ck_panel_block(), count: panelBlocks)
        ck_pack(CK_TYPE_Q8_0, blocks, Int32(rows), Int32(cols), &packed)
    }

    /// W^T packed for the backward-data product, and its dequantized values [cols, rows].
    func transposedPack() -> (packed: [ck_panel_block], dequantized: [Float]) {
        let count = Int(ck_packed_bytes(CK_TYPE_Q8_0, Int32(cols), Int32(rows))) / MemoryLayout<ck_panel_block>.stride
        var packedT = Array(repeating: ck_panel_block(), count: count)
        ck_q8_pack_transposed(blocks, Int32(rows), Int32(cols), &packedT)
        var deq = Array(repeating: Float(0), count: cols * rows)
        ck_packed_dequantize(CK_TYPE_Q8_0, packedT, Int32(cols), Int32(rows), 0, Int32(cols), 0, Int32(rows), &deq, Int32(rows))
        return (packedT, deq)
    }
}

/// Runs ck_gemm_q8 with a workspace of exactly the size it asks for.
func gemmQ8(_ x: [Float], m: Int, k: Int, _ w: [ck_panel_block], n: Int, mode: ck_act_mode) -> [Float] {
    var y = Array(repeating: Float.nan, count: m * n)
    var workspace = [UInt8](repeating: 0, count: ck_gemm_workspace_size(Int32(m), Int32(k), mode))
    let status = workspace.withUnsafeMutableBytes { ws in
        ck_gemm(CK_TYPE_Q8_0, x, Int32(m), Int32(k), w, Int32(n), &y, mode, ws.baseAddress, ws.count)
    }
    #expect(status == CK_OK)
    return y
}

/// Double-precision product rows of X [m, k] with rows of W [n, k], and the sum of the
/// absolute terms of each output (the scale rounding errors are proportional to).
func referenceProduct(_ x: [Float], m: Int, k: Int, _ w: [Float], n: Int) -> (y: [Float], magnitude: [Double]) {
    var y = [Float](repeating: 0, count: m * n)
    var magnitude = [Double](repeating: 0, count: m * n)
    for i in 0..<m {
        for o in 0..<n {
            var acc = 0.0
            var mag = 0.0
            for j in 0..<k {
                let term = Double(x[i * k + j]) * Double(w[o * k + j])
                acc += term
                mag += abs(term)
            }
            y[i * n + o] = Float(acc)
            magnitude[i * n + o] = mag
        }
    }
    return (y, magnitude)
}

/// Central differences of `loss` at sampled coordinates of `x` against `analytic`.
/// With f32 kernels and h = 1e-2 the quotient is off by O(h²) truncation plus
/// eps·|L|/h rounding: about 1e-4 for the sizes here, so 2e-3·(1+|g|) has margin
/// without hiding a wrong formula (those are off by O(|g|)).
func checkGradient(_ x: [Float], _ analytic: [Float], _ label: String, loss: ([Float]) -> Double) {
    var x = x
    var worst = 0.0
    let h: Float = 1e-2
    for index in stride(from: 0, to: x.count, by: max(1, x.count / 60)) {
        let saved = x[index]
        x[index] = saved + h
        let up = loss(x)
        x[index] = saved - h
        let down = loss(x)
        x[index] = saved
        let numeric = (up - down) / Double(2 * h)
        let error = abs(numeric - Double(analytic[index])) / (1 + abs(numeric))
        #expect(error <= 2e-3, "\(label) index \(index): numeric \(numeric) analytic \(analytic[index])")
        worst = max(worst, error)
    }
    report("\(label) gradient vs finite differences", worst)
}

func weightedSum(_ y: [Float], _ r: [Float]) -> Double {
    zip(y, r).reduce(0) { $0 + Double($1.0) * Double($1.1) }
}

/// Block scales of the int8 activation quantizer for X [m, k]: [m, ceil(k/32)].
func activationScales(_ x: [Float], m: Int, k: Int) -> [Float] {
    let kb = Int(ck_q8_blocks_per_row(Int32(k)))
    var q = [Int8](repeating: 0, count: m * kb * 32)
    var d = [Float](repeating: 0, count: m * kb)
    ck_quantize_act_ref(x, Int32(m), Int32(k), &q, &d)
    return d
}
