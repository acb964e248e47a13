import BenchmarkSupport
import CKernels
import Foundation
import LoRACore
import XCTest

/// Kernel throughput, printed as one JSON object per line:
/// `swift test -c release --filter KernelBenchmarks`. Each figure is verified first and
/// set against a baseline measured in the same run.
final class KernelBenchmarks: XCTestCase {
    static let report = BenchmarkReport(suite: "kernels")
    /// SmolLM2-135M's projection shapes (K x N) and one Llama-2-7B MLP shape.
    static let shapes: [(k: Int, n: Int)] = [(576, 1536), (1536, 576), (576, 576), (4096, 11008)]

    /// Best wall time of `body` over at least 3 runs and at least `budget` seconds.
    func bestTime(budget: Double = 0.6, _ body: () -> Void) -> Double {
        body() // warm caches and lazily built state
        var best = Double.infinity
        var spent = 0.0
        var runs = 0
        while runs < 3 || spent < budget {
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            best = min(best, elapsed)
            spent += elapsed
            runs += 1
        }
        return best
    }

    /// OpenBLAS's own threaded sgemm on the f32 problem: the baseline every fused product is
    /// set against (C[m,n] = A[m,k] · op(B)).
    func openBLASSeconds(m: Int, n: Int, k: Int, a: Tensor, b: Tensor, transposeB: Bool) -> Double {
        var c = Tensor(zeros: [m, n])
        let threads = Int32(KernelRuntime.threads)
        return bestTime {
            a.withUnsafeBufferPointer { ap in
                b.withUnsafeBufferPointer { bp in
                    c.withUnsafeMutableBufferPointer { cp in
                        let status = ck_sgemm_openblas_threaded(
                            0, transposeB ? 1 : 0, Int32(m), Int32(n), Int32(k), 1, ap.baseAddress,
                            Int32(k), bp.baseAddress, Int32(transposeB ? k : n), 0, cp.baseAddress,
                            Int32(n), threads)
                        precondition(status == CK_OK)
                    }
                }
            }
        }
    }

    /// Worst |int8 - exact| over the output, relative to the output's largest magnitude.
    func relativeError(_ got: Tensor, _ exact: Tensor) -> Float {
        let g = got.scalars
        let e = exact.scalars
        let scale = e.map(abs).max() ?? 1
        return zip(g, e).map { abs($0 - $1) }.max()! / scale
    }

    func testGemmInt8() {
        print("# \(KernelRuntime.instructionSet.rawValue), \(KernelRuntime.threads) threads, \(KernelRuntime.blasBackend)")
        for m in [512, 2048] {
            for (k, n) in Self.shapes {
                for (type, name) in [(TensorDataType.q8_0, "int8"), (.q4_0, "q4_0")] {
                    let w = QuantizedWeight(quantizing: Tensor.uniform([n, k], seed: 1), type: type)
                    let wF32 = w.dequantized()
                    let x = Tensor.uniform([m, k], seed: 2)
                    let dy = Tensor.uniform([m, n], seed: 3)
                    let flops = 2.0 * Double(m) * Double(n) * Double(k)
                    let shape = "\(m)x\(k)x\(n)"

                    let y = Kernels.matmul(x, w)
                    let yExact = Kernels.matmul(x, wF32, transposeB: true)
                    XCTAssertLessThan(relativeError(y, yExact), 0.02, "forward \(name) \(shape)")
                    let forward = bestTime { _ = Kernels.matmul(x, w) }
                    let forwardBase = openBLASSeconds(m: m, n: n, k: k, a: x, b: wF32, transposeB: true)
                    Self.report.emit(
                        "gemm_\(name)_fwd_\(shape)", flops / forward / 1e9, unit: "GFLOP/s", baseline: "openblas_sgemm",
                        baselineValue: flops / forwardBase / 1e9)
                    let backwardBase = openBLASSeconds(m: m, n: k, k: n, a: dy, b: wF32, transposeB: false)
                    let dxExact = Kernels.matmul(dy, wF32)
                    // the direct product reads the forward blocks; the copy is int8's faster option
                    for mode in type == .q8_0 ? [BackwardDataMode.direct, .transposedCopy] : [.direct] {
                        let dx = Kernels.matmulBackwardData(dy, w, mode: mode)
                        XCTAssertLessThan(relativeError(dx, dxExact), 0.02, "backward \(name) \(mode) \(shape)")
                        let backward = bestTime { _ = Kernels.matmulBackwardData(dy, w, mode: mode) }
                        Self.report.emit(
                            "gemm_\(name)_bwd_data_\(mode == .direct ? "direct" : "copy")_\(shape)", flops / backward / 1e9,
                            unit: "GFLOP/s", baseline: "openblas_sgemm", baselineValue: flops / backwardBase / 1e9)
                    }
                }
            }
        }
    }

    func testGemvInt8() {
        let copyBytes = 1 << 30 // 1 GiB: far past the 260 MiB L3, so this is DRAM bandwidth
        let source = UnsafeMutableRawPointer.allocate(byteCount: copyBytes, alignment: 64)
        let destination = UnsafeMutableRawPointer.allocate(byteCount: copyBytes, alignment: 64)
        defer {
            source.deallocate()
            destination.deallocate()
        }
        memset(source, 1, copyBytes)
        memset(destination, 0, copyBytes)
        let copySeconds = bestTime(budget: 1) { memcpy(destination, source, copyBytes) }
        // STREAM's convention: a copy moves its bytes twice (read + write)
        let copyRate = 2 * Double(copyBytes) / copySeconds / 1e9

        for (k, n) in Self.shapes {
            for (type, name) in [(TensorDataType.q8_0, "int8"), (.q4_0, "q4_0")] {
                let w = QuantizedWeight(quantizing: Tensor.uniform([n, k], seed: 4), type: type)
                let x = Tensor.uniform([1, k], seed: 5)
                let y = Kernels.matmul(x, w)
                XCTAssertLessThan(relativeError(y, Kernels.matmul(x, w, activations: .f32)), 0.02, "gemv \(name) \(k)x\(n)")
                let seconds = bestTime(budget: 0.3) { _ = Kernels.matmul(x, w) }
                Self.report.emit(
                    "gemv_\(name)_1x\(k)x\(n)", Double(w.byteCount) / seconds / 1e9, unit: "GB/s", baseline: "memcpy",
                    baselineValue: copyRate)
            }
        }
    }

    /// A rank-16 adapter's added output on a 576 → 1536 projection, at inference: the row
    /// kernel on Aᵀ, Bᵀ (LoRAAdapter's evaluation path) against the two sgemm calls of its
    /// training path, for one decoded row up to a prefill chunk; checked to agree first.
    func testLoRAOutput() {
        let adapter = LoRAAdapter(a: .uniform([16, 576], seed: 6), b: .uniform([1536, 16], seed: 7), scale: 2)
        for rows in [1, 8, 32, 64, 256] {
            let x = Tensor.uniform([rows, 576], seed: 8)
            func run(training: Bool) -> Tensor {
                adapter.dropoutSeed = training ? 1 : nil // dropout 0: the seed only picks the path
                let y = Tensor(zeros: [rows, 1536])
                adapter.addOutput(of: x, to: y)
                return y
            }
            XCTAssertLessThan(relativeError(run(training: false), run(training: true)), 1e-5, "lora \(rows) rows")
            let kernel = bestTime(budget: 0.3) { _ = run(training: false) }
            let sgemm = bestTime(budget: 0.3) { _ = run(training: true) }
            Self.report.emit(
                "lora_r16_576x1536_\(rows)_rows", kernel * 1e6, unit: "µs", baseline: "two_sgemm_calls",
                baselineValue: sgemm * 1e6)
        }
    }

    /// A rank-16 adapter's weight gradients over one step of 1024 tokens, the two products
    /// with the token dimension inside (dB = dYᵀ·u, dA = duᵀ·x, on a 576 → 1536 projection
    /// and back): ck_lora_product's transposed-A tiles against OpenBLAS's sgemm on the same
    /// product, checked to agree first. Both read the long factor down its columns.
    func testLoRAGradientProducts() {
        let tokens = 1024
        let threads = Int32(KernelRuntime.threads)
        for (name, m, n) in [("dB_1536x16", 1536, 16), ("dB_576x16", 576, 16), ("dA_16x576", 16, 576), ("dA_16x1536", 16, 1536)] {
            let a = Tensor.uniform([tokens, m], seed: 9)
            let b = Tensor.uniform([tokens, n], seed: 10)
            var kernel = Tensor(zeros: [m, n])
            var blas = Tensor(zeros: [m, n])
            func run(_ c: inout Tensor, sgemm: Bool) {
                a.withUnsafeBufferPointer { ap in
                    b.withUnsafeBufferPointer { bp in
                        c.withUnsafeMutableBufferPointer { cp in
                            if sgemm {
                                let status = ck_sgemm_openblas_threaded(
                                    1, 0, Int32(m), Int32(n), Int32(tokens), 1, ap.baseAddress, Int32(m), bp.baseAddress,
                                    Int32(n), 0, cp.baseAddress, Int32(n), threads)
                                precondition(status == CK_OK)
                            } else {
                                ck_lora_product(
                                    1, Int32(m), Int32(n), Int32(tokens), 1, ap.baseAddress, Int32(m), bp.baseAddress, Int32(n), 0,
                                    cp.baseAddress, Int32(n))
                            }
                        }
                    }
                }
            }
            run(&kernel, sgemm: false)
            run(&blas, sgemm: true)
            XCTAssertLessThan(relativeError(kernel, blas), 1e-5, "lora gradient \(name)")
            let kernelSeconds = bestTime(budget: 0.3) { run(&kernel, sgemm: false) }
            let sgemmSeconds = bestTime(budget: 0.3) { run(&blas, sgemm: true) }
            Self.report.emit(
                "lora_gradient_\(name)_1024_tokens", kernelSeconds * 1e6, unit: "µs", baseline: "openblas_sgemm",
                baselineValue: sgemmSeconds * 1e6)
        }
    }
}
