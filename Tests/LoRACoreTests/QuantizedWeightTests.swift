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

    @Test func matmulKeepsLeadingDimensions() {
        let w = QuantizedWeight(quantizing: Tensor.uniform([16, 32], seed: 6))
        let x = Tensor.uniform([2, 3, 32], seed: 7)
        #expect(Kernels.matmul(x, w).shape == [2, 3, 16])
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

    @Test func opsRunThroughTheWrappers() {
        let x = Tensor.uniform([4, 2, 8], seed: 8)
        let before = x.copy()
        Kernels.rope(x, positions: [0, 1, 2, 3], frequencies: Kernels.ropeFrequencies(theta: 10_000, rotaryDims: 8), layout: .halves)
        #expect(x.rows(0..<1).scalars == before.rows(0..<1).scalars) // position 0 is the identity
        Kernels.rope(
            x, positions: [0, 1, 2, 3], frequencies: Kernels.ropeFrequencies(theta: 10_000, rotaryDims: 8), layout: .halves, inverse: true)
        #expect(zip(x.scalars, before.scalars).allSatisfy { abs($0 - $1) < 1e-6 })
        let (y, rstd) = Kernels.rmsNorm(
            x.reshaped([8, 8]), weight: try! Tensor(shape: [8], values: .init(repeating: 1, count: 8)), eps: 1e-5)
        #expect(y.shape == [8, 8] && rstd.shape == [8])
        let (loss, counted, _) = Kernels.crossEntropy(logits: Tensor(zeros: [2, 4]), targets: [1, -100])
        #expect(counted == 1 && abs(loss - Float(4).logNatural) < 1e-6)
    }
}

extension Float {
    var logNatural: Float { Float(Foundation.log(Double(self))) }
}
