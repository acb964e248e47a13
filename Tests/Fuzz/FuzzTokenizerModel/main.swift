import FuzzSupport
import LoRACore

/// SentencePiece's `tokenizer.model` (protobuf), then a round trip of a text through it.
func fuzzTokenizerModel(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    _ = FuzzInput.write(start, count, name: "tokenizer.model")
    guard let tokenizer = try? makeTokenizer(huggingFaceFolder: FuzzInput.folder) else { return 0 }
    let ids = tokenizer.encode("Hello wörld 12 \n\t! 😀", parseSpecial: true, addBOS: nil)
    _ = tokenizer.decode(ids)
    return 0
}

FuzzInput.run(fuzzTokenizerModel)
