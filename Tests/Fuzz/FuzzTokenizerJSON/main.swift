import FuzzSupport

/// A Hugging Face `tokenizer.json` (byte-level or SentencePiece BPE).
func fuzzTokenizerJSON(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    FuzzInput.tokenizer(start, count, fileName: "tokenizer.json")
}

FuzzInput.run(fuzzTokenizerJSON)
