import FuzzSupport
import LoRACore

/// A training JSONL file (messages, prompt/completion or text lines), encoded with the tiny
/// model's tokenizer and chat format, then batched as a run would.
func fuzzTrainingJSONL(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let path = FuzzInput.write(start, count, name: "train.jsonl")
    let model = FuzzInput.tinyModel
    guard let data = try? TrainingDataset.load(path: path, model: model, sequenceLength: 64, trainOnPrompt: count % 2 == 0) else {
        return 0
    }
    var settings = TrainingSettings()
    settings.sequenceLength = 64
    settings.pack = count % 3 == 0
    let plan = BatchPlan(dataset: data, settings: settings)
    for index in 0..<min(plan.microBatchesPerEpoch, 4) { _ = plan.microBatch(index) }
    return 0
}

FuzzInput.run(fuzzTrainingJSONL)
