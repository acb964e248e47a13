import Foundation
import LoRACore
import Testing

@Suite struct QuantizedWeightTests {
    @Test func q8_0BlocksRoundTripBitForBit() throws {
        let w = QuantizedWeight(quantizing: Tensor.uniform([37, 70], seed: 1))
        #expect(w.blocksPerRow == 3)
        let blocks = w.q8_0Blocks()
        #expect(blocks.count == 37 * 3 * 34)
        let reloaded = try blocks.withUnsafeBytes { try QuantizedWeight(blocks: $0, type: .q8_0, rows: 37, cols: 70, name: "w") }
        #expect(reloaded.q8_0Blocks() == blocks)
        #expect(reloaded.dequantized().scalars == w.dequantized().scalars)
    }

    @Test func truncatedBlocksAreATypedErrorNamingTheTensor() {
        let bytes = [UInt8](repeating: 0, count: 33)
        #expect(throws: LoRAError.quantizedSizeMismatch(what: "blk.0.attn_q.weight [1, 32] Q8_0", expected: 34, actual: 33)) {
            try bytes.withUnsafeBytes { try QuantizedWeight(blocks: $0, type: .q8_0, rows: 1, cols: 32, name: "blk.0.attn_q.weight") }
        }
        #expect(throws: LoRAError.quantizedSizeMismatch(what: "blk.0.ffn_down.weight [2, 256] Q4_K", expected: 288, actual: 33)) {
            try bytes.withUnsafeBytes { try QuantizedWeight(blocks: $0, type: .q4_K, rows: 2, cols: 256, name: "blk.0.ffn_down.weight") }
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

    @Test(arguments: [TensorDataType.q8_0, .q4_0])
    func backwardDataAgreesWithTheTransposedProduct(type: TensorDataType) {
        let w = QuantizedWeight(quantizing: Tensor.uniform([40, 70], seed: 4), type: type)
        let dy = Tensor.uniform([5, 40], seed: 5)
        let exact = Kernels.matmul(dy, w.dequantized())
        func worst(_ mode: BackwardDataMode) -> Float {
            let dx = Kernels.matmulBackwardData(dy, w, mode: mode)
            #expect(dx.shape == [5, 70])
            return zip(dx.scalars, exact.scalars).map { abs($0 - $1) }.max()!
        }
        #expect(worst(.exact) < 1e-5)
        // dY and the weights rounded to int8 per block of 32 (direct: w·scale requantized per
        // column; copy: Wᵀ requantized): |dY| <= 1 and |w| <= 1 move each of 40 terms by <= 2/254
        #expect(worst(.direct) < 40 * 1.0 / 127)
        if type == .q8_0 { #expect(worst(.transposedCopy) < 40 * 1.0 / 127) }
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
