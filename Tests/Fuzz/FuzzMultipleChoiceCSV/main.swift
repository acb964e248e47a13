import Evaluation
import FuzzSupport

/// An MMLU CSV file with the same bytes as its dev file, read with 0 to 2 few-shot examples.
func fuzzMultipleChoiceCSV(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let path = FuzzInput.write(start, count, name: "anatomy_test.csv")
    _ = FuzzInput.write(start, count, name: "anatomy_dev.csv")
    _ = try? MultipleChoiceSet.load(path, shots: count % 3)
    return 0
}

FuzzInput.run(fuzzMultipleChoiceCSV)
