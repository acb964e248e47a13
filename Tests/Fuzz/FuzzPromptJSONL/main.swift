import Evaluation
import FuzzSupport

/// A prompt set as JSONL: `prompt` and an optional `category` a line.
func fuzzPromptJSONL(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let path = FuzzInput.write(start, count, name: "prompts.jsonl")
    _ = try? PromptSet.load(path)
    return 0
}

FuzzInput.run(fuzzPromptJSONL)
