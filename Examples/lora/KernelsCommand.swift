import ArgumentParser
import Foundation
import LoRACore

/// Shows the compute runtime and runs the fused int8 products at a model's projection
/// shapes, checked against the exact f32 product.
struct KernelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernels",
        abstract: "Show the CPU path, threads and BLAS backend, and time the int8 kernels at SmolLM2's shapes."
    )

    @Option(help: "Model file whose presence is reported (the default model from scripts/fetch-model).")
    var model: String?

    @Option(help: "Tokens per batch for the GEMM runs.")
    var tokens = 512

    @Option(help: "Threads (default: $SWIFT_LORA_THREADS or the core count).")
    var threads: Int?

    func run() throws {
        if let threads { KernelRuntime.threads = threads }
        print(
            "CPU path: \(KernelRuntime.instructionSet.rawValue)   threads: \(KernelRuntime.threads)   "
                + "f32 GEMM: \(KernelRuntime.blasBackend)")
        if let model {
            let size = (try? FileManager.default.attributesOfItem(atPath: model)[.size] as? Int) ?? nil
            guard let size else { throw ValidationError("model file not found: \(model)") }
            print("model: \(model) (\(size / 1_000_000) MB); generation on it arrives with the model loader")
        }
        // SmolLM2-135M: q/o [576, 576], k/v [192, 576], gate/up [1536, 576], down [576, 1536]
        for (name, rows, cols) in [("q_proj", 576, 576), ("k_proj", 192, 576), ("up_proj", 1536, 576), ("down_proj", 576, 1536)] {
            let weight = Tensor.uniform([rows, cols], seed: UInt64(rows * cols))
            let quantized = QuantizedWeight(quantizing: weight)
            let x = Tensor.uniform([tokens, cols], seed: 7)
            let exact = Kernels.matmul(x, weight, transposeB: true)
            let seconds = Self.bestTime { _ = Kernels.matmul(x, quantized) }
            let y = Kernels.matmul(x, quantized)
            let error = zip(y.scalars, exact.scalars).map { abs($0 - $1) }.max()!
            let gflops = 2 * Double(tokens * rows * cols) / seconds / 1e9
            let decode = Self.bestTime { _ = Kernels.matmul(x.rows(0..<1), quantized) }
            print(
                String(
                    format: "%-10@ [%4d, %4d]  int8 GEMM %6.1f GFLOP/s   GEMV %6.1f µs   max |int8 - f32| %.4f",
                    name as NSString, rows, cols, gflops, decode * 1e6, error))
        }
    }

    static func bestTime(_ body: () -> Void) -> Double {
        body()
        var best = Double.infinity
        for _ in 0..<5 {
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return best
    }
}
