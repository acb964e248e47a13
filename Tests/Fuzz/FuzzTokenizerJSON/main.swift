import FuzzSupport
import LoRACore

/// A Hugging Face `tokenizer.json` (byte-level or SentencePiece BPE), then a round trip of a
/// text with special tokens through the tokenizer it builds.
func fuzzTokenizerJSON(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    _ = FuzzInput.write(start, count, name: "tokenizer.json")
    guard let tokenizer = try? makeTokenizer(huggingFaceFolder: FuzzInput.folder) else { return 0 }
    let ids = tokenizer.encode("Hello <s> wörld 12 \n\t!", parseSpecial: true, addBOS: nil)
    _ = tokenizer.decode(ids)
    return 0
}

FuzzInput.run(fuzzTokenizerJSON)
