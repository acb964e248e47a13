import BenchmarkSupport
import Foundation
import LoRACore
import XCTest

/// LoRA training throughput on the real model, one JSON object per line:
/// `SWIFT_LORA_MODEL=PATH swift test -c release --filter TrainingBenchmarks`. SmolLM2-135M-
/// Instruct, rank 16, alpha 32, all seven projections of every layer, AdamW, batch 4 × 256
/// tokens, the threads of KernelRuntime (2 here). The int8 step is set against the same step
/// on the exact-f32 model (OpenBLAS sgemm) in the same run; scripts/peer-training.py
/// measures PyTorch + PEFT on the same configuration.
final class TrainingBenchmarks: XCTestCase {
    static let report = BenchmarkReport(suite: "training")

    /// `count` sequences of `length` token ids, every position learned.
    static func batch(vocab: Int, count: Int = 4, length: Int = 256) -> TrainingBatch {
        var generator = SeededGenerator(seed: 1)
        let tokens = (0..<count * length).map { _ in Int32(generator.next() % UInt64(vocab)) }
        let targets = tokens.indices.map { t in t % length == length - 1 ? -1 : tokens[t + 1] }
        return TrainingBatch(tokens: tokens, targets: targets, sequences: Array(repeating: length, count: count))
    }

    struct Phases { var step = 0.0, forward = 0.0, optimizer = 0.0, loss = 0.0 }

    /// One optimizer step (forward, loss, backward, AdamW) a few times; the best of each
    /// phase. The forward (with the head's loss) is timed on its own; backward = step −
    /// forward − optimizer.
    func measure(_ lm: LanguageModel, steps: Int, backward: BackwardDataMode, batch: TrainingBatch? = nil) -> Phases {
        let model = lm.model
        model.backwardData = backward
        defer { model.backwardData = .direct }
        let adapters = model.attachLoRA(LoRAConfiguration(rank: 16, alpha: 32), seed: 1)
        defer { model.detachAdapters() }
        let optimizer = AdamW(adapters: adapters, settings: .init())
        let batch = batch ?? Self.batch(vocab: model.config.vocabSize)
        var best = Phases(step: .infinity, forward: .infinity, optimizer: .infinity)
        for _ in 0..<steps {
            var start = Date()
            let loss = model.accumulateGradients(batch, lossScale: 1 / Float(batch.countedTokens), recompute: false)
            let pass = Date().timeIntervalSince(start)
            start = Date()
            optimizer.update(learningRate: 1e-4)
            for (_, adapter) in adapters { adapter.zeroGradients() }
            let update = Date().timeIntervalSince(start)
            start = Date()
            _ = model.loss(batch)
            let forward = Date().timeIntervalSince(start)
            best.step = min(best.step, pass + update)
            best.optimizer = min(best.optimizer, update)
            best.forward = min(best.forward, forward)
            best.loss = loss.mean
        }
        return best
    }

    func testLoRAStepThroughput() throws {
        try XCTSkipUnless(
            FileManager.default.fileExists(atPath: BenchmarkEnvironment.modelPath), "no model at \(BenchmarkEnvironment.modelPath)")
        // the 4-bit model first, freed before the int8 one loads: peak RSS only grows
        let (fourBit, q4RSS, q4Bytes) = try {
            let q4 = try LanguageModel.load(path: BenchmarkEnvironment.modelPath, precision: .q4)
            return (measure(q4, steps: 4, backward: .direct), BenchmarkEnvironment.peakRSS(), q4.summary.modelBytes)
        }()
        let int8 = try LanguageModel.load(path: BenchmarkEnvironment.modelPath, precision: .int8)
        let noCopy = measure(int8, steps: 4, backward: .direct)
        let quantized = measure(int8, steps: 4, backward: .transposedCopy)
        let rss = BenchmarkEnvironment.peakRSS()
        XCTAssert(quantized.loss.isFinite && quantized.loss > 0 && fourBit.loss.isFinite && noCopy.loss.isFinite)
        let exact = measure(try LanguageModel.load(path: BenchmarkEnvironment.modelPath, precision: .f32), steps: 2, backward: .exact)
        let tokens = 1024.0
        Self.report.emit(
            "train_step_int8_r16_b4x256", tokens / quantized.step, unit: "tok/s", baseline: "same step, exact f32 weights (OpenBLAS)",
            baselineValue: tokens / exact.step)
        Self.report.emit(
            "train_step_int8_nocopy_r16_b4x256", tokens / noCopy.step, unit: "tok/s", baseline: "train_step_int8_r16_b4x256",
            baselineValue: tokens / quantized.step)
        Self.report.emit(
            "train_step_q4_r16_b4x256", tokens / fourBit.step, unit: "tok/s", baseline: "train_step_int8_r16_b4x256",
            baselineValue: tokens / quantized.step)
        Self.report.emit(
            "train_backward_int8_nocopy", (noCopy.step - noCopy.forward - noCopy.optimizer) * 1000, unit: "ms",
            baseline: "with copies", baselineValue: (quantized.step - quantized.forward - quantized.optimizer) * 1000)
        Self.report.emit(
            "train_forward_and_loss_q4", fourBit.forward * 1000, unit: "ms", baseline: "int8", baselineValue: quantized.forward * 1000)
        Self.report.emit(
            "train_backward_q4", (fourBit.step - fourBit.forward - fourBit.optimizer) * 1000, unit: "ms",
            baseline: "int8 with copies", baselineValue: (quantized.step - quantized.forward - quantized.optimizer) * 1000)
        Self.report.emit(
            "train_peak_rss_q4", q4RSS, unit: "MiB", baseline: "q4 weights in memory", baselineValue: Double(q4Bytes) / 1_048_576)
        let backward = quantized.step - quantized.forward - quantized.optimizer
        let exactBackward = exact.step - exact.forward - exact.optimizer
        Self.report.emit(
            "train_forward_and_loss_int8", quantized.forward * 1000, unit: "ms", baseline: "f32", baselineValue: exact.forward * 1000)
        Self.report.emit("train_backward_int8", backward * 1000, unit: "ms", baseline: "f32", baselineValue: exactBackward * 1000)
        Self.report.emit("train_adamw_int8", quantized.optimizer * 1000, unit: "ms", baseline: "f32", baselineValue: exact.optimizer * 1000)
        Self.report.emit(
            "train_peak_rss_int8", rss, unit: "MiB", baseline: "int8 weights in memory",
            baselineValue: Double(int8.summary.modelBytes) / 1_048_576)
    }

    /// A 7B-shaped model ($SWIFT_LORA_LARGE_MODEL): one step of batch 1 × 512 on the 4-bit
    /// blocks, then on int8 (the file requantized), without transposed copies; tok/s and the
    /// peak RSS after each, against the weights' own size.
    func testLargeModelStep() throws {
        guard let path = BenchmarkEnvironment.largeModelPath else { throw XCTSkip("SWIFT_LORA_LARGE_MODEL is not set") }
        for precision in [WeightPrecision.q4, .int8] {
            let (phases, bytes) = try {
                let model = try LanguageModel.load(path: path, precision: precision)
                let batch = Self.batch(vocab: model.model.config.vocabSize, count: 1, length: 512)
                return (measure(model, steps: 1, backward: .direct, batch: batch), model.summary.modelBytes)
            }()
            Self.report.emit(
                "train_step_large_\(precision.rawValue)_r16_b1x512", 512 / phases.step, unit: "tok/s", baseline: "forward and loss",
                baselineValue: 512 / phases.forward)
            Self.report.emit(
                "train_peak_rss_large_\(precision.rawValue)", BenchmarkEnvironment.peakRSS(), unit: "MiB",
                baseline: "weights in memory", baselineValue: Double(bytes) / 1_048_576)
        }
    }
}
