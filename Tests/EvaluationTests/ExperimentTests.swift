import Evaluation
import Foundation
import LoRACore
import Testing

/// The experiment as a library call on the tiny Llama 2 fixture: config decoding (finetune's
/// option names straight into the settings, errors naming the key), the whole loop, and a
/// second run that resumes to the same report.
struct ExperimentTests {
    static let tiny = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../LoRACoreTests/Fixtures/tiny-llama2/hf-f32").standardized.path

    @Test func theConfigDecodesIntoTheSettings() throws {
        let scratch = Scratch()
        let path = scratch.file(
            "experiment.json",
            """
            {"model": "m.gguf", "precision": "f32",
             "train": {"data": "t.jsonl", "eval_split": 0.25, "rank": 4, "alpha": 8, "lr": 0.001, "targets": "q,v",
                       "layers": [0], "schedule": "cosine", "clip": 0, "seq-len": 64, "recompute": "always", "pack": true},
             "evaluations": [{"kind": "ppl", "data": "p.txt", "window": 32}], "checkpoints": false}
            """)
        let experiment = try Experiment.load(config: path)
        var settings = TrainingSettings()
        settings.lora = LoRAConfiguration(rank: 4, alpha: 8, targets: ["q_proj", "v_proj"], layers: [0])
        settings.learningRate = 0.001
        settings.schedule = .cosine
        settings.optimizer.clipNorm = nil
        settings.sequenceLength = 64
        settings.recompute = true
        settings.pack = true
        var job = TrainingJob(data: "t.jsonl", settings: settings)
        job.heldOutFraction = 0.25
        #expect(
            experiment
                == Experiment(
                    model: "m.gguf", precision: .f32, training: job,
                    evaluations: [EvaluationOptions(kind: .ppl, data: "p.txt", window: 32)], checkpoints: false))
    }

    @Test(arguments: [
        (#"{"train": {"data": "t", "rnak": 4}, "evaluations": []}"#, "train.rnak: not an option of lora finetune"),
        (#"{"train": {"data": "t", "rank": "four"}, "evaluations": []}"#, "train.rank: "),
        (#"{"train": {"rank": 4}, "evaluations": []}"#, "train.data: missing"),
        (#"{"train": {"data": "t"}}"#, "evaluations: missing"),
    ])
    func aBadConfigNamesTheKey(json: String, message: String) throws {
        let path = Scratch().file("experiment.json", json)
        let error = try #require(throws: EvaluationError.self) { try Experiment.load(config: path) }
        #expect("\(error)".hasPrefix("\(path): \(message)"), "\(error)")
    }

    @Test func theWholeLoopRunsAndResumes() throws {
        let scratch = Scratch()
        let lines = (0..<6).map { #"{"prompt": "Count \#($0):", "completion": " \#($0) \#($0 + 1) \#($0 + 2)"}"# }
        var job = TrainingJob(data: scratch.file("train.jsonl", lines.joined(separator: "\n")))
        job.settings.lora = LoRAConfiguration(rank: 2, alpha: 4)
        job.settings.steps = 2
        job.settings.batchSize = 3
        job.settings.sequenceLength = 32
        job.settings.checkpointEvery = 1
        job.settings.learningRate = 1e-2
        let text = scratch.file("text.txt", "one two three four five six seven eight nine ten eleven twelve")
        let experiment = Experiment(training: job, evaluations: [EvaluationOptions(kind: .ppl, data: text, window: 16, stride: 8)])
        let model = try LanguageModel.load(path: Self.tiny, precision: .f32)
        let out = "\(scratch.folder)/out"
        var events: [String] = []
        guard
            case .finished(let report) = try experiment.run(
                model: model, output: out,
                onEvent: { event in
                    if case .evaluated(let results) = event { events.append(results.runs.map(\.label).joined(separator: ",")) }
                })
        else {
            Issue.record("the experiment did not finish")
            return
        }
        #expect(events == ["base", "base,checkpoint-1,adapter"])
        #expect(report.training?.map(\.step) == [1, 2])
        let perplexities = report.evaluations[0].runs.compactMap { $0.perplexity?.perplexity }
        #expect(perplexities.count == 3 && perplexities[0] != perplexities[2]) // the adapter changed the model
        #expect(FileManager.default.fileExists(atPath: "\(out)/report.html"))
        // again: everything is read back, nothing is trained, the same report
        let again = try experiment.run(model: model, output: out)
        guard case .finished(let second) = again else {
            Issue.record("the second run did not finish")
            return
        }
        #expect(second.evaluations == report.evaluations && second.training == report.training)
    }
}
