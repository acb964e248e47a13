import BenchmarkSupport
import Foundation
import LoRACore
import XCTest

/// Model throughput on the real model, one JSON object per line:
/// `SWIFT_LORA_MODEL=PATH swift test -c release --filter InferenceBenchmarks` (default:
/// SmolLM2-135M-Instruct from scripts/fetch-model). Each int8 figure is set against the
/// same work on the exact-f32 model (OpenBLAS sgemm) in the same run; scripts/peer-inference.py
/// measures llama.cpp and PyTorch on the same file.
final class InferenceBenchmarks: XCTestCase {
    static let report = BenchmarkReport(suite: "inference")

    /// Prefill of a 512-token prompt and 128 greedy decode steps after it, through the
    /// Generator as an application runs them (prefill in its chunks); best of 3 and of 2.
    func measure(_ model: LanguageModel, prompt: [Int32]) -> (prefill: Double, decode: Double) {
        let generator = Generator(model: model.model, tokenizer: model.tokenizer)
        var prefill = 0.0
        var decode = 0.0
        for _ in 0..<3 {
            prefill = max(prefill, generator.generate(prompt: prompt, stop: StopConditions(maxTokens: 0)).prefillTokensPerSecond)
        }
        for _ in 0..<2 {
            let summary = generator.generate(prompt: prompt, stop: StopConditions(maxTokens: 129, stopTokens: []))
            XCTAssertEqual(summary.generatedTokens, 129)
            decode = max(decode, summary.decodeTokensPerSecond) // 128 steps after the first token
        }
        return (prefill, decode)
    }

    func testPrefillAndDecode() throws {
        let path = BenchmarkEnvironment.modelPath
        print("# \(KernelRuntime.instructionSet.rawValue), \(KernelRuntime.threads) threads, \(KernelRuntime.blasBackend), \(path)")
        let q4 = try LanguageModel.load(path: path, precision: .q4)
        let int8 = try LanguageModel.load(path: path, precision: .int8)
        let rssAfterLoad = BenchmarkEnvironment.peakRSS()
        let text = String(repeating: "The library opens at nine in the morning and closes at six in the evening. ", count: 80)
        let prompt = Array(int8.tokenizer.encode(text, parseSpecial: false, addBOS: nil).prefix(512))
        XCTAssertEqual(prompt.count, 512)
        let fast = measure(int8, prompt: prompt)
        let fourBit = measure(q4, prompt: prompt)
        let rss = BenchmarkEnvironment.peakRSS()
        let f32 = try LanguageModel.load(path: path, precision: .f32)
        let exact = measure(f32, prompt: prompt)
        Self.report.emit(
            "prefill_512_int8", fast.prefill, unit: "tok/s", baseline: "prefill_512_f32_openblas", baselineValue: exact.prefill)
        Self.report.emit("decode_128_int8", fast.decode, unit: "tok/s", baseline: "decode_128_f32_openblas", baselineValue: exact.decode)
        Self.report.emit("prefill_512_q4", fourBit.prefill, unit: "tok/s", baseline: "prefill_512_int8", baselineValue: fast.prefill)
        Self.report.emit("decode_128_q4", fourBit.decode, unit: "tok/s", baseline: "decode_128_int8", baselineValue: fast.decode)
        Self.report.emit("peak_rss_int8_and_q4", rss, unit: "MiB", baseline: "peak_rss_after_load", baselineValue: rssAfterLoad)
        let memory = BenchmarkEnvironment.memoryReadRate(threads: KernelRuntime.threads)
        Self.report.emit(
            "decode_128_q4_weight_stream", Self.streamedBytes(q4) * fourBit.decode / 1e9, unit: "GB/s",
            baseline: "memory_read_256MiB", baselineValue: memory)
        // Each decoded token streams every weight once (the model is several times L3): the
        // rate that implies, against what memory delivers.
        Self.report.emit(
            "decode_128_int8_weight_stream", Self.streamedBytes(int8) * fast.decode / 1e9, unit: "GB/s",
            baseline: "memory_read_256MiB", baselineValue: memory)
    }

    /// Bytes a decoding step reads: every weight but the token embeddings, of which it reads
    /// one row (unless they are tied to the output head, which reads them all).
    static func streamedBytes(_ model: LanguageModel) -> Double {
        let llama = model.model
        return Double(model.summary.modelBytes - (llama.config.tieWordEmbeddings ? 0 : llama.embedTokens.table.byteCount))
    }

    /// Decoding a 7B-shaped model ($SWIFT_LORA_LARGE_MODEL) on its 4-bit blocks and on int8:
    /// tok/s against the ceiling the weight stream sets (the bytes a step reads at the rate
    /// memory delivers them). This VM's memory rate drifts by a third within a minute, so
    /// each of 3 rounds measures it just before and after decoding (their mean is the
    /// round's ceiling), and both figures are the rounds' medians. The read loop can fall
    /// below what decoding itself streams, so a last line sets each precision's GB/s against
    /// the fastest stream the run showed, read loop or decoding.
    func testLargeModelDecode() throws {
        guard let path = BenchmarkEnvironment.largeModelPath else { throw XCTSkip("SWIFT_LORA_LARGE_MODEL is not set") }
        var streamed: [(precision: WeightPrecision, rate: Double)] = []
        var fastest = 0.0
        for precision in [WeightPrecision.q4, .int8] {
            let model = try LanguageModel.load(path: path, precision: precision)
            let generator = Generator(model: model.model, tokenizer: model.tokenizer)
            let prompt = model.tokenizer.encode("The library opens at nine.", parseSpecial: false, addBOS: nil)
            let bytes = Self.streamedBytes(model)
            var rates: [Double] = []
            var ceilings: [Double] = []
            for _ in 0..<3 {
                let before = BenchmarkEnvironment.memoryReadRate(threads: KernelRuntime.threads)
                let rate = generator.generate(prompt: prompt, stop: StopConditions(maxTokens: 33, stopTokens: [])).decodeTokensPerSecond
                let after = BenchmarkEnvironment.memoryReadRate(threads: KernelRuntime.threads)
                rates.append(rate)
                ceilings.append((before + after) / 2 * 1e9 / bytes)
                fastest = max(fastest, before, after, rate * bytes / 1e9)
            }
            Self.report.emit(
                "decode_32_large_\(precision.rawValue)", Self.median(rates), unit: "tok/s", baseline: "weight_stream_ceiling",
                baselineValue: Self.median(ceilings))
            streamed.append((precision, Self.median(rates) * bytes / 1e9))
        }
        for (precision, rate) in streamed {
            Self.report.emit(
                "decode_32_large_\(precision.rawValue)_stream", rate, unit: "GB/s", baseline: "fastest_stream_this_run",
                baselineValue: fastest)
        }
    }

    static func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

    /// Decoding with a rank-16 adapter on all seven projections (what evaluating a fine-tune
    /// runs) against the bare model: 128 greedy tokens after a short chat prompt, best of 3
    /// alternated rounds each, same model, same run.
    func testDecodeWithAdapter() throws {
        let model = try LanguageModel.load(path: BenchmarkEnvironment.modelPath, precision: .int8)
        let generator = Generator(model: model.model, tokenizer: model.tokenizer)
        let prompt = model.encodeChat([.user("Write a few sentences about rivers.")])
        let stop = StopConditions(maxTokens: 129, stopTokens: [])
        func rate() -> Double {
            let summary = generator.generate(prompt: prompt, stop: stop)
            XCTAssertEqual(summary.generatedTokens, 129)
            return summary.decodeTokensPerSecond
        }
        var bare = 0.0
        var adapted = 0.0
        for _ in 0..<3 {
            model.model.detachAdapters()
            bare = max(bare, rate())
            _ = model.model.attachLoRA(LoRAConfiguration(rank: 16, alpha: 32), seed: 1)
            adapted = max(adapted, rate())
        }
        Self.report.emit(
            "decode_128_int8_lora_r16_all_projections", adapted, unit: "tok/s",
            baseline: "decode_128_int8_no_adapter", baselineValue: bare)
    }

    /// 32 chat prompts × 128 greedy tokens (no stop token, so every sequence runs the
    /// whole length): aggregate generated tokens/s of batched generation (all 32 at once)
    /// against one prompt at a time, same model, same run, best of 3 alternated rounds.
    /// Checks that both produce the same number of tokens.
    func testBatchedGeneration() throws {
        let model = try LanguageModel.load(path: BenchmarkEnvironment.modelPath, precision: .int8)
        let generator = Generator(model: model.model, tokenizer: model.tokenizer)
        let topics = ["rivers", "bread", "chess", "volcanoes", "bicycles", "owls", "tea", "glaciers"]
        let prompts = (0..<32).map { i in
            model.encodeChat([.user("Write \(i % 4 + 2) sentences about \(topics[i % topics.count]), number \(i).")])
        }
        let stop = StopConditions(maxTokens: 128, stopTokens: [])
        func seconds(_ work: () -> [GenerationSummary]) -> Double {
            let start = Date()
            let summaries = work()
            XCTAssertEqual(summaries.map(\.generatedTokens), Array(repeating: 128, count: prompts.count))
            return Date().timeIntervalSince(start)
        }
        let tokens = Double(prompts.count * 128)
        // alternated rounds, the best of each: this machine's speed drifts by tens of percent
        // within a minute, which would otherwise bias whichever side ran in the slow stretch
        var single = Double.infinity
        var batched = Double.infinity
        for _ in 0..<3 {
            single = min(single, seconds { prompts.map { generator.generate(prompt: $0, stop: stop) } })
            batched = min(batched, seconds { generator.generate(prompts: prompts, stop: stop, batchSize: 32) })
        }
        Self.report.emit(
            "batched_generation_32x128_int8", tokens / batched, unit: "tok/s",
            baseline: "one_at_a_time_32x128_int8", baselineValue: tokens / single)
    }

    /// Multiple-choice scoring, 4 choices after a 5-shot MMLU-style context (~190 tokens):
    /// seconds per item with the context run once and the choices continuing from copies of
    /// its cache, against the naive cost (each choice scored from scratch as context +
    /// continuation), same model, same run. Checks first that both give the same choice.
    func testSharedPrefixScoring() throws {
        let model = try LanguageModel.load(path: BenchmarkEnvironment.modelPath, precision: .int8)
        let shot = "Which of these is a primary colour?\nA. Green\nB. Red\nC. Purple\nD. Orange\nAnswer: B\n\n"
        let context =
            "The following are multiple choice questions (with answers) about general knowledge.\n\n"
            + String(repeating: shot, count: 5) + "Which planet is closest to the Sun?\nA. Venus\nB. Earth\nC. Mercury\nD. Mars\nAnswer:"
        let contextIDs = model.tokenizer.encode(context, parseSpecial: false, addBOS: nil)
        let choices = [" A", " B", " C", " D"].map { model.tokenizer.encode($0, parseSpecial: false, addBOS: false) }
        func best(_ scores: [Double]) -> Int { scores.indices.max { scores[$0] < scores[$1] }! }
        func shared() -> [Double] { model.model.score(context: contextIDs, continuations: choices).map(\.logLikelihood) }
        func naive() -> [Double] {
            choices.map { choice in
                let ids = contextIDs + choice
                let logits = model.model.forward(ids, logits: .all)!
                let rows = logits.rows(contextIDs.count - 1..<ids.count - 1)
                return Kernels.logProbabilities(logits: rows, targets: choice).reduce(0.0) { $0 + Double($1) }
            }
        }
        XCTAssertEqual(best(shared()), best(naive()))
        func seconds(_ work: () -> [Double]) -> Double {
            var fastest = Double.infinity
            for _ in 0..<5 {
                let start = Date()
                _ = work()
                fastest = min(fastest, Date().timeIntervalSince(start))
            }
            return fastest
        }
        let naiveSeconds = seconds(naive)
        let sharedSeconds = seconds(shared)
        print("# \(contextIDs.count) context tokens, 4 one-token choices")
        // items/s, so the ratio reads as times fewer seconds per item than the naive way
        Self.report.emit(
            "mc_shared_prefix_items_per_s", 1 / sharedSeconds, unit: "items/s",
            baseline: "mc_naive_items_per_s", baselineValue: 1 / naiveSeconds)
    }

    /// Encoding 1 MB of mixed text (words, digits, code, accents, CJK, emoji) with the
    /// model's tokenizer, verified to decode back; the goal is well under a second.
    func testTokenizeOneMegabyte() throws {
        let tokenizer = try makeTokenizer(gguf: GGUFFile(path: BenchmarkEnvironment.modelPath))
        let sample = """
            The library opens at 9:00 and closes at 18:30; visitors borrow up to 5 books. \
            Café naïve — “quotes” 😀 中文字符 日本語. def f(x):\n    return x ** 2  # square\n\n
            """
        var text = ""
        while text.utf8.count < 1_000_000 { text += sample }
        var ids: [Int32] = []
        let start = DispatchTime.now().uptimeNanoseconds
        ids = tokenizer.encode(text, parseSpecial: false, addBOS: false)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        XCTAssertEqual(tokenizer.decode(ids), text)
        let megabytes = Double(text.utf8.count) / 1e6
        Self.report.emit("tokenize_1MB", megabytes / seconds, unit: "MB/s", baseline: "goal_1MB_per_second", baselineValue: 1)
    }
}
