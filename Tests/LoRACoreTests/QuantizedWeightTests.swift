import Foundation
import LoRACore
import Testing

@Suite struct QuantizedWeightTests {
    @Test func q8_0BlocksRoundTripBitForBit() throws {
        let w = QuantizedWeight(quantizing: Tensor.uniform([37, 70], seed: 1))
        #expect(w.blocksPerRow == 3)
        let blocks = w.q8_0Blocks()
        #expect(blocks.count == 37 * 3 * 34)
        let reloaded = try blocks.withUnsafeBytes { try QuantizedWeight(q8_0Blocks: $0, rows: 37, cols: 70, name: "w") }
        #expect(reloaded.q8_0Blocks() == blocks)
        #expect(reloaded.dequantized().scalars == w.dequantized().scalars)
    }

    @Test func truncatedBlocksAreATypedErrorNamingTheTensor() {
        let bytes = [UInt8](repeating: 0, count: 33)
        #expect(throws: LoRAError.quantizedSizeMismatch(what: "blk.0.attn_q.weight [1, 32]", expected: 34, actual: 33)) {
            try bytes.withUnsafeBytes { try QuantizedWeight(q8_0Blocks: $0, rows: 1, cols: 32, name: "blk.0.attn_q.weight") }
        }
    }

    @Test func matmulAgreesWithTheDequantizedF32Product() {
        let w = QuantizedWeight(quantizing: Tensor.uniform([50, 96], seed: 2))
        let x = Tensor.uniform([7, 96], seed: 3)
        let exact = Kernels.matmul(x, w.dequantized(), transposeB: true)
        let f32 = Kernels.matmul(x, w, activations: .f32)
        let int8 = Kernels.matmul(x, w)
        #expect(int8.shape == [7, 50] && f32.shape == [7, 50])
        let f32Error = zip(f32.scalars, exact.scalars).map { abs($0 - $1) }.max()!
        let int8Error = zip(int8.scalars, exact.scalars).map { abs($0 - $1) }.max()!
        #expect(f32Error < 1e-5)
        // activations |x| <= 1 quantized with step <= 1/127, 96 weights |w| <= 1
        #expect(int8Error < 96 * 0.5 / 127)
        #expect(int8Error > 0) // the int8 path really quantizes
    }

    @Test func backwardDataAgreesWithTheTransposedProduct() {
        let w = QuantizedWeight(quantizing: Tensor.uniform([40, 70], seed: 4))
        let dy = Tensor.uniform([5, 40], seed: 5)
        let exact = Kernels.matmul(dy, w.dequantized())
        let f32 = Kernels.matmulBackwardData(dy, w, activations: .f32)
        let int8 = Kernels.matmulBackwardData(dy, w)
        #expect(f32.shape == [5, 70] && int8.shape == [5, 70])
        #expect(zip(f32.scalars, exact.scalars).map { abs($0 - $1) }.max()! < 1e-5)
        #expect(zip(int8.scalars, exact.scalars).map { abs($0 - $1) }.max()! < 40 * 1.0 / 127)
    }

    /// A [2, 3, 32] input is six rows: the product keeps the leading dimensions and each row
    /// equals the same row multiplied alone: bit for bit on the int8 path, which quantizes
    /// and sums each row on its own, within f32 rounding through sgemm (which takes other
    /// code paths for other row counts).
    @Test func matmulKeepsLeadingDimensions() {
        let w = QuantizedWeight(quantizing: Tensor.uniform([16, 32], seed: 6))
        let x = Tensor.uniform([2, 3, 32], seed: 7)
        for activations in [ActivationPrecision.int8, .f32] {
            let y = Kernels.matmul(x, w, activations: activations)
            #expect(y.shape == [2, 3, 16])
            let flat = x.reshaped([6, 32])
            for row in 0..<6 {
                let alone = Kernels.matmul(flat.rows(row..<row + 1), w, activations: activations).scalars
                let together = y.reshaped([6, 16]).rows(row..<row + 1).scalars
                let worst = zip(together, alone).map { abs($0 - $1) }.max()!
                #expect(activations == .int8 ? together == alone : worst < 1e-5, "row \(row), \(activations): \(worst)")
            }
        }
    }

    @Test func shapeMismatchTrapsWithAMessage() async {
        await #expect(processExitsWith: .failure) {
            let w = QuantizedWeight(quantizing: Tensor(zeros: [4, 32]))
            _ = Kernels.matmul(Tensor(zeros: [2, 31]), w)
        }
    }
}

@Suite struct KernelRuntimeTests {
    @Test func reportsTheRuntime() throws {
        // Read-only here: the C kernel tests force paths and thread counts, and suites of
        // different targets run concurrently in one process.
        #expect(KernelRuntime.threads >= 1)
        #expect(KernelRuntime.instructionSet.isSupported && KernelRuntime.bestInstructionSet.isSupported)
        #expect(InstructionSet.scalar.isSupported)
        #expect(KernelRuntime.blasBackend.hasPrefix("OpenBLAS"))
    }

    /// The Swift wrappers hand the kernels the right pointers and shapes: RoPE, RMSNorm and
    /// cross-entropy against the formulas computed here in double.
    @Test func opsRunThroughTheWrappers() throws {
        let x = Tensor.uniform([4, 2, 8], seed: 8)
        let before = x.scalars
        let frequencies = Kernels.ropeFrequencies(theta: 10_000, rotaryDims: 8)
        #expect(zip(frequencies, (0..<4).map { pow(10_000, -2 * Double($0) / 8) }).allSatisfy { abs(Double($0) - $1) < 1e-7 })
        for layout in [RoPELayout.halves, .adjacentPairs] {
            let rotated = try Tensor(shape: x.shape, values: before)
            Kernels.rope(rotated, positions: [0, 1, 2, 3], frequencies: frequencies, layout: layout)
            // position p, head h: pair i is (i, i + 4) for halves and (2i, 2i + 1) for adjacent pairs
            for p in 0..<4 {
                for h in 0..<2 {
                    for i in 0..<4 {
                        let (a, b) = layout == .halves ? (i, i + 4) : (2 * i, 2 * i + 1)
                        let base = (p * 2 + h) * 8
                        let angle = Double(p) * Double(frequencies[i])
                        let xa = Double(before[base + a])
                        let xb = Double(before[base + b])
                        let ya = xa * cos(angle) - xb * sin(angle)
                        let yb = xa * sin(angle) + xb * cos(angle)
                        #expect(abs(Double(rotated.scalars[base + a]) - ya) < 1e-6 && abs(Double(rotated.scalars[base + b]) - yb) < 1e-6)
                    }
                }
            }
        }
        let gain = try Tensor(shape: [8], values: (0..<8).map { 0.5 + Float($0) / 8 })
        let (y, rstd) = Kernels.rmsNorm(x.reshaped([8, 8]), weight: gain, eps: 1e-5)
        for row in 0..<8 {
            let values = before[(row * 8)..<(row * 8 + 8)].map(Double.init)
            let r = 1 / (values.reduce(0) { $0 + $1 * $1 } / 8 + 1e-5).squareRoot()
            #expect(abs(Double(rstd.scalars[row]) - r) < 1e-5 * r)
            for c in 0..<8 { #expect(abs(Double(y.scalars[row * 8 + c]) - values[c] * r * Double(gain.scalars[c])) < 1e-5) }
        }
        let logits = try Tensor(shape: [2, 4], values: [1, 2, 3, 4, 0, 0, 0, 9])
        let (loss, counted, _) = Kernels.crossEntropy(logits: logits, targets: [1, -100])
        let expected = log(exp(1.0) + exp(2.0) + exp(3.0) + exp(4.0)) - 2 // -log softmax(row 0)[1]; row 1 is masked
        #expect(counted == 1 && abs(Double(loss) - expected) < 1e-6)
    }
}
