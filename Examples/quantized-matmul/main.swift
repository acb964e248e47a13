// The library API in a few lines: quantize a weight matrix to int8 and to 4-bit blocks,
// multiply with the fused kernel, run the backward-data product on the same blocks,
// compare with exact f32.
import LoRACore

let rows = 256
let cols = 576
let tokens = 8
let weight = Tensor.uniform([rows, cols], seed: 1) // [out, in], as checkpoints store it
let x = Tensor.uniform([tokens, cols], seed: 2) // [tokens, in]
let yExact = Kernels.matmul(x, weight, transposeB: true)

func worst(_ a: Tensor, _ b: Tensor) -> Float { zip(a.scalars, b.scalars).map { abs($0 - $1) }.max() ?? 0 }
print("CPU path \(KernelRuntime.instructionSet.rawValue), \(KernelRuntime.threads) threads")
print("weight [\(rows), \(cols)]: \(rows * cols * 4) bytes in f32")
for type in [TensorDataType.q8_0, .q4_0] {
    let quantized = QuantizedWeight(quantizing: weight, type: type)
    let y = Kernels.matmul(x, quantized) // [tokens, out], int8 activations
    let dx = Kernels.matmulBackwardData(yExact, quantized, mode: .direct) // [tokens, in]
    print("\(type.rawValue): \(quantized.byteCount) bytes in panels")
    print("  y \(y.shape): max |\(type.rawValue) - f32| = \(worst(y, yExact))")
    print("  dx \(dx.shape): max |\(type.rawValue) - f32| = \(worst(dx, Kernels.matmul(yExact, weight)))")
}
