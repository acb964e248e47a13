import Evaluation
import FuzzSupport

/// A multiple-choice JSONL file: HellaSwag's rows or generic question/choices/answer lines.
func fuzzMultipleChoiceJSONL(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let path = FuzzInput.write(start, count, name: "questions.jsonl")
    _ = try? MultipleChoiceSet.load(path)
    return 0
}

FuzzInput.run(fuzzMultipleChoiceJSONL)
