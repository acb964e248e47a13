import FuzzSupport
import LoRACore

/// A GGUF file: the header, metadata and tensor table, then the whole model load (config,
/// tokenizer, every tensor converted) when the table reads.
func fuzzGGUF(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let path = FuzzInput.write(start, count, name: "input.gguf")
    guard (try? GGUFFile(path: path)) != nil else { return 0 }
    if let model = try? LanguageModel.load(path: path, precision: .int8) {
        _ = model.tokenizer.encode("the hen", parseSpecial: true, addBOS: nil)
    }
    return 0
}

FuzzInput.run(fuzzGGUF)
