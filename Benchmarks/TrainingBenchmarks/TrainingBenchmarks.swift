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
    static let suite = "training"

    func emit(_ name: String, _ value: Double, unit: String, baseline: String, baselineValue: Double) {
        func format(_ v: Double) -> String { String(format: "%.4g", v) }
        let fields: [(String, String)] = [
            ("suite", "\"\(Self.suite)\""), ("name", "\"\(name)\""), ("value", format(value)), ("unit", "\"\(unit)\""),
            ("baseline", "\"\(baseline)\""), ("baseline_value", format(baselineValue)), ("ratio", format(value / baselineValue)),
        ]
        print("{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}")
        fflush(nil)
    }

    static var modelPath: String {
        let environment = ProcessInfo.processInfo.environment
        let cache = environment["SWIFT_LORA_CACHE"] ?? "\(NSHomeDirectory())/.cache/swift-lora"
        return environment["SWIFT_LORA_MODEL"] ?? "\(cache)/SmolLM2-135M-Instruct.Q4_1.gguf"
    }

    static func peakRSS() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024
    }

    /// 4 sequences of 256 token ids, every position learned.
    static func batch(vocab: Int) -> TrainingBatch {
        var generator = SeededGenerator(seed: 1)
        let tokens = (0..<1024).map { _ in Int32(generator.next() % UInt64(vocab)) }
        let targets = tokens.indices.map { t in t % 256 == 255 ? -1 : tokens[t + 1] }
        return TrainingBatch(tokens: tokens, targets: targets, sequences: [256, 256, 256, 256])
    }

    struct Phases { var step = 0.0, forward = 0.0, optimizer = 0.0, loss = 0.0 }

    /// One optimizer step (forward, loss, backward, AdamW) a few times; the best of each
    /// phase. The forward (with the head's loss) is timed on its own; backward = step −
    /// forward − optimizer.
    func measure(_ lm: LanguageModel, steps: Int) -> Phases {
        let model = lm.model
        let adapters = model.attachLoRA(LoRAConfiguration(rank: 16, alpha: 32), seed: 1)
        defer { model.detachAdapters() }
        let optimizer = AdamW(adapters: adapters, settings: .init())
        let batch = Self.batch(vocab: model.config.vocabSize)
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
        try XCTSkipUnless(FileManager.default.fileExists(atPath: Self.modelPath), "no model at \(Self.modelPath)")
        let int8 = try LanguageModel.load(path: Self.modelPath, precision: .int8)
        let quantized = measure(int8, steps: 4)
        let rss = Self.peakRSS()
        XCTAssert(quantized.loss.isFinite && quantized.loss > 0)
        let exact = measure(try LanguageModel.load(path: Self.modelPath, precision: .f32), steps: 2)
        let tokens = 1024.0
        emit("train_step_int8_r16_b4x256", tokens / quantized.step, unit: "tok/s", baseline: "same step, exact f32 weights (OpenBLAS)",
             baselineValue: tokens / exact.step)
        let backward = quantized.step - quantized.forward - quantized.optimizer
        let exactBackward = exact.step - exact.forward - exact.optimizer
        emit("train_forward_and_loss_int8", quantized.forward * 1000, unit: "ms", baseline: "f32", baselineValue: exact.forward * 1000)
        emit("train_backward_int8", backward * 1000, unit: "ms", baseline: "f32", baselineValue: exactBackward * 1000)
        emit("train_adamw_int8", quantized.optimizer * 1000, unit: "ms", baseline: "f32", baselineValue: exact.optimizer * 1000)
        emit("train_peak_rss_int8", rss, unit: "MiB", baseline: "int8 weights in memory", baselineValue: Double(int8.summary.modelBytes) / 1_048_576)
    }
}
