import Evaluation
import FuzzSupport

/// A prompt set as CSV: AdvBench's `goal` column, or `prompt`, with an optional `category`
/// (XSTest's `type`).
func fuzzPromptCSV(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let path = FuzzInput.write(start, count, name: "prompts.csv")
    _ = try? PromptSet.load(path)
    return 0
}

FuzzInput.run(fuzzPromptCSV)
