import Foundation
import LoRACore
import Testing

@Suite struct KernelRuntimeTests {
    @Test func reportsTheRuntime() throws {
        #expect(KernelRuntime.threads >= 1)
        #expect(KernelRuntime.instructionSet.isSupported && KernelRuntime.bestInstructionSet.isSupported)
        #expect(InstructionSet.scalar.isSupported)
        #expect(KernelRuntime.blasBackend.hasPrefix("OpenBLAS"))
    }

    /// Settings made with `onThisThread` reach the calling thread's kernels only: tests of
    /// one path or thread count run beside the others without changing what they compute.
    @Test func thisThreadsSettingsStayOnIt() throws {
        let threads = KernelRuntime.threads
        let isa = KernelRuntime.instructionSet
        try KernelRuntime.onThisThread(threads: threads + 3, isa: .scalar) {
            #expect(KernelRuntime.threads == threads + 3 && KernelRuntime.instructionSet == .scalar)
            final class Seen: @unchecked Sendable { var threads = 0, isa = InstructionSet.scalar }
            let seen = Seen()
            let done = DispatchSemaphore(value: 0)
            Thread {
                seen.threads = KernelRuntime.threads
                seen.isa = KernelRuntime.instructionSet
                done.signal()
            }.start()
            done.wait()
            #expect(seen.threads == threads && seen.isa == isa)
        }
        #expect(KernelRuntime.threads == threads && KernelRuntime.instructionSet == isa)
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
