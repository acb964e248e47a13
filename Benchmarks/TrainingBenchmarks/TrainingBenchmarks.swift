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
    static func measure(_ lm: LanguageModel, steps: Int, backward: BackwardDataMode, batch: TrainingBatch? = nil) -> Phases {
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
            return (Self.measure(q4, steps: 4, backward: .direct), BenchmarkEnvironment.peakRSS(), q4.summary.modelBytes)
        }()
        let int8 = try LanguageModel.load(path: BenchmarkEnvironment.modelPath, precision: .int8)
        let noCopy = Self.measure(int8, steps: 4, backward: .direct)
        let quantized = Self.measure(int8, steps: 4, backward: .transposedCopy)
        let rss = BenchmarkEnvironment.peakRSS()
        XCTAssert(quantized.loss.isFinite && quantized.loss > 0 && fourBit.loss.isFinite && noCopy.loss.isFinite)
        let exact = Self.measure(try LanguageModel.load(path: BenchmarkEnvironment.modelPath, precision: .f32), steps: 2, backward: .exact)
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
                return (Self.measure(model, steps: 1, backward: .direct, batch: batch), model.summary.modelBytes)
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

/// The data-parallel trainer's one collective a step, against the step it follows.
final class GradientSumBenchmarks: XCTestCase {
    static let report = BenchmarkReport(suite: "training")

    /// Summing a 7B rank-16 adapter's gradients (40M floats) across 2 and 4 ranks over
    /// loopback TCP (Examples/gradient-sum under mpirun, best of 5), as a share of the step
    /// it follows: a 7B step of batch 1 × 512 on the 4-bit base, from 1- and 2-layer slices
    /// of the 7B shape measured here (the rest + 32 × a layer).
    func testGradientSumOfA7BAdapter() throws {
        let mpirun = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let mpirun else { throw XCTSkip("mpirun not found (Debian's openmpi-bin)") }
        let folder = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let binary = folder.appendingPathComponent("gradient-sum").path
        guard FileManager.default.isExecutableFile(atPath: binary) else { throw XCTSkip("\(binary) not built") }
        let step = try projected7BStep()
        for ranks in [2, 4] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: mpirun)
            process.arguments = [
                "-np", "\(ranks)", "--oversubscribe", "--mca", "btl", "self,tcp", "--mca", "btl_tcp_if_include", "lo", binary,
            ]
            var environment = ProcessInfo.processInfo.environment
            environment["OMPI_ALLOW_RUN_AS_ROOT"] = "1"
            environment["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"
            process.environment = environment
            let output = Pipe()
            process.standardOutput = output
            try process.run()
            let data = output.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            XCTAssertEqual(process.terminationStatus, 0)
            struct Line: Decodable { let seconds: Double }
            let line = try JSONDecoder().decode(Line.self, from: data)
            Self.report.emit(
                "gradient_sum_7b_r16_\(ranks)_ranks_loopback", line.seconds, unit: "s", baseline: "7B step 1x512 q4 (projected)",
                baselineValue: step)
        }
    }

    /// Seconds of one 7B step (batch 1 × 512, q4, r16 on all projections) from slices of the
    /// 7B shape with 1 and 2 layers, synthesized here.
    func projected7BStep() throws -> Double {
        let source = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../Tests/LoRACoreTests/Fixtures/llama2-configs/Llama-2-7b-chat-hf.config.json")
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: source)) as! [String: Any]
        var seconds: [Double] = []
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("swift-lora-bench-\(getpid())")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        for layers in [1, 2] {
            json["num_hidden_layers"] = layers
            let configPath = scratch.appendingPathComponent("config-\(layers).json").path
            try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: configPath))
            let modelPath = scratch.appendingPathComponent("slice-\(layers).gguf").path
            try SyntheticModel.write(config: try LlamaConfig(huggingFaceConfig: configPath), recipe: .q4_0, to: modelPath, seed: 1)
            let model = try LanguageModel.load(path: modelPath, precision: .q4)
            let batch = TrainingBenchmarks.batch(vocab: model.model.config.vocabSize, count: 1, length: 512)
            seconds.append(TrainingBenchmarks.measure(model, steps: 2, backward: .direct, batch: batch).step)
        }
        let layer = seconds[1] - seconds[0]
        return seconds[0] - layer + 32 * layer
    }
}
