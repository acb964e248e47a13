// The library API in a few lines: quantize a weight matrix to int8 blocks, multiply with
// the fused kernel, run the backward-data product, compare with exact f32.
import LoRACore

let rows = 256
let cols = 576
let tokens = 8
let weight = Tensor.uniform([rows, cols], seed: 1) // [out, in], as checkpoints store it
let int8Weight = QuantizedWeight(quantizing: weight)
let x = Tensor.uniform([tokens, cols], seed: 2) // [tokens, in]

let y = Kernels.matmul(x, int8Weight) // [tokens, out], int8 activations
let yExact = Kernels.matmul(x, weight, transposeB: true)
let dx = Kernels.matmulBackwardData(y, int8Weight) // [tokens, in]

func worst(_ a: Tensor, _ b: Tensor) -> Float { zip(a.scalars, b.scalars).map { abs($0 - $1) }.max() ?? 0 }
print("CPU path \(KernelRuntime.instructionSet.rawValue), \(KernelRuntime.threads) threads")
print("weight [\(rows), \(cols)]: \(rows * cols * 4) bytes in f32, \(int8Weight.byteCount) as int8 panels")
print("y \(y.shape): max |int8 - f32| = \(worst(y, yExact))")
print("dx \(dx.shape): max |int8 - f32| = \(worst(dx, Kernels.matmul(yExact, weight)))")
