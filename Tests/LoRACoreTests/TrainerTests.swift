import Foundation
import LoRACore
import Testing

/// The trainer on the tiny Llama 2 chat model: dataset parsing and its errors, masks,
/// reproducibility, and a resumed run equal to an uninterrupted one bit for bit.
@Suite(.serialized) struct TrainerTests {
    static func model(_ precision: WeightPrecision = .int8) throws -> LanguageModel {
        try LanguageModel.load(path: Fixtures.url("tiny-llama2/tiny-llama2.q8_0.gguf").path, precision: precision)
    }

    /// The tiny model with its matrices requantized to Q4_0 blocks (GGUFWriter), which the
    /// q4 precision keeps as stored.
    static let q4File: String = {
        let path = folder("q4-model") + "/tiny-llama2.q4_0.gguf"
        let source = try! GGUFFile(path: Fixtures.url("tiny-llama2/tiny-llama2.f16.gguf").path)
        var writer = GGUFWriter()
        writer.copyMetadata(of: source)
        writer.set("general.file_type", .uint32(2))
        for info in source.tensors {
            if info.shape.count == 2 {
                writer.add(info.name, shape: info.shape, type: .q4_0) { () throws(LoRAError) -> Tensor in try source.values(of: info.name) }
            } else {
                try! writer.copy(info.name, from: source)
            }
        }
        try! writer.write(to: path)
        return path
    }()

    /// The bases training runs on: int8 with each backward variant, and 4-bit blocks.
    static let variants: [(precision: WeightPrecision, backward: BackwardDataMode)] = [
        (.int8, .transposedCopy), (.int8, .direct), (.q4, .direct),
    ]

    static func folder(_ name: String) -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("swift-lora-trainer-\(getpid())/\(name)").path
        try? FileManager.default.removeItem(atPath: path)
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func write(_ lines: [String], _ name: String) -> String {
        let path = folder("data") + "/\(name).jsonl"
        #expect(FileManager.default.createFile(atPath: path, contents: Data((lines.joined(separator: "\n") + "\n").utf8)))
        return path
    }

    static let lines = (0..<12).map { i in
        i % 3 == 0
            ? #"{"text":"plain text number \#(i) about maps"}"#
            : i % 3 == 1
                ? #"{"prompt":"Question \#(i)?","completion":"Answer \#(i)."}"#
                : #"{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi \#(i)"},"#
                    + #"{"role":"assistant","content":"Hello \#(i)."},{"role":"user","content":"Again?"},"#
                    + #"{"role":"assistant","content":"Yes."}]}"#
    }

    @Test func masksLearnOnlyTheAnswers() throws {
        let lm = try Self.model()
        let data = try TrainingDataset.load(path: Self.write(Self.lines, "masks"), model: lm, sequenceLength: 128)
        #expect(data.examples.count == 12)
        // a chat example: the learned tokens are exactly the two assistant turns
        let chat = data.examples[2]
        let learnedText = lm.tokenizer.decode(chat.tokens.indices.filter { chat.learned[$0] }.map { chat.tokens[$0] })
        #expect(
            learnedText.contains("Hello 2.") && learnedText.contains("Yes.") && !learnedText.contains("Hi 2")
                && !learnedText.contains("Be brief"))
        // plain text: everything after the first token
        #expect(data.examples[0].learned == data.examples[0].tokens.indices.map { $0 > 0 })
        let all = try TrainingDataset.load(path: Self.write(Self.lines, "masks"), model: lm, sequenceLength: 128, trainOnPrompt: true)
        #expect(all.learnedTokenCount > data.learnedTokenCount)
    }

    @Test(arguments: [
        ("{\"text\": \"ok\"}\nnot json", 2, "not a JSON object"),
        ("{\"messages\":[{\"role\":\"robot\",\"content\":\"x\"}]}", 1, "unknown role"),
        ("{\"prompt\":\"p\"}", 1, "must both be strings"),
        ("{\"other\":1}", 1, "no \"messages\""),
        ("\n\n{\"messages\":[{\"role\":\"user\",\"content\":\"only a question\"}]}", 3, "nothing to learn"),
        ("{\"prompt\":\"\(String(repeating: "long prompt ", count: 40))\",\"completion\":\"a\"}", 1, "nothing left to learn"),
    ])
    func malformedLinesNameTheFileAndLine(text: String, line: Int, problem: String) throws {
        let lm = try Self.model()
        let path = Self.folder("bad") + "/bad.jsonl"
        #expect(FileManager.default.createFile(atPath: path, contents: Data(text.utf8)))
        #expect {
            _ = try TrainingDataset.load(path: path, model: lm, sequenceLength: 32)
        } throws: { error in
            guard case .invalidExample(let file, let at, let message) = error as? LoRAError else { return false }
            return file == path && at == line && message.contains(problem)
        }
    }

    static func settings() -> TrainingSettings {
        var settings = TrainingSettings()
        settings.lora = LoRAConfiguration(rank: 4, alpha: 8, dropout: 0.1)
        settings.learningRate = 1e-2
        settings.schedule = .cosine
        settings.warmupSteps = 2
        settings.steps = 8
        settings.batchSize = 2
        settings.sequenceLength = 64
        settings.gradientAccumulation = 2
        settings.seed = 11
        return settings
    }

    static func train(
        _ output: String, resume: Bool = false, stopAfter: Int? = nil, threads: Int = 2,
        variant: (precision: WeightPrecision, backward: BackwardDataMode) = (.int8, .transposedCopy)
    ) throws -> (reports: [TrainingStepReport], adapter: Data) {
        let lm = variant.precision == .q4 ? try LanguageModel.load(path: q4File, precision: .q4) : try model(variant.precision)
        let data = try TrainingDataset.load(path: write(lines, "train"), model: lm, sequenceLength: 64)
        let (train, heldOut) = data.split(heldOut: 0.25, seed: 1)
        var settings = settings()
        settings.backwardData = variant.backward
        let trainer = try LoRATrainer(model: lm, settings: settings, train: train, heldOut: heldOut, output: output)
        var steps = 0
        let reports = try KernelRuntime.onThisThread(threads: threads) {
            try trainer.run(
                resume: resume, shouldStop: { steps >= (stopAfter ?? .max) },
                onEvent: { event in
                    if case .step = event { steps += 1 }
                })
        }
        let adapter = FileManager.default.contents(atPath: "\(output)/adapter_model.safetensors") ?? Data()
        return (reports, adapter)
    }

    /// Training learns, and the same settings give the same adapter bit for bit with one
    /// thread or two, on every base and backward variant.
    @Test(arguments: 0..<variants.count)
    func runsAreReproducibleAcrossThreadCounts(variant: Int) throws {
        let v = Self.variants[variant]
        let (reports, adapter) = try Self.train(Self.folder("two-threads"), variant: v)
        #expect(reports.count == 8 && reports.last!.loss < reports.first!.loss && reports.last!.evalLoss != nil)
        #expect(!adapter.isEmpty)
        let (again, oneThread) = try Self.train(Self.folder("one-thread"), threads: 1, variant: v)
        #expect(oneThread == adapter, "\(v)")
        #expect(again.map(\.loss) == reports.map(\.loss))
    }

    /// A transposed copy needs int8 weights: asking for one on a 4-bit base is an error
    /// naming the setting, before any training.
    @Test func aTransposedCopyOfA4BitBaseIsRefused() throws {
        let lm = try LanguageModel.load(path: Self.q4File, precision: .q4)
        #expect(lm.summary.conversions.counts.keys.contains("Q4_0 → Q4_0"))
        let data = try TrainingDataset.load(path: Self.write(Self.lines, "train"), model: lm, sequenceLength: 64)
        var settings = Self.settings()
        settings.backwardData = .transposedCopy
        #expect(throws: LoRAError.invalidTrainingSetting(setting: "backwardData", problem: "transposed copies need int8 weights, not q4")) {
            try LoRATrainer(model: lm, settings: settings, train: data, heldOut: nil, output: Self.folder("refused"))
        }
    }

    /// Stopped after 3 steps (as Ctrl-C does) and resumed: the adapter and the log equal an
    /// uninterrupted run's, on every base.
    @Test(arguments: 0..<variants.count)
    func aResumedRunEqualsAnUninterruptedOne(variant: Int) throws {
        let v = Self.variants[variant]
        let whole = try Self.train(Self.folder("whole"), variant: v)
        let output = Self.folder("interrupted")
        let first = try Self.train(output, stopAfter: 3, variant: v)
        #expect(first.reports.count == 3 && first.adapter.isEmpty)
        #expect(FileManager.default.fileExists(atPath: "\(output)/checkpoint-3/optimizer.safetensors"))
        let rest = try Self.train(output, resume: true, variant: v)
        #expect(rest.reports.first?.step == 4 && rest.adapter == whole.adapter)
        let log = try String(contentsOfFile: "\(output)/train_log.jsonl", encoding: .utf8).split(separator: "\n")
        #expect(log.count == 8)
    }
}
