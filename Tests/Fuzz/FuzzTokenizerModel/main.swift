import FuzzSupport

/// SentencePiece's `tokenizer.model` (protobuf).
func fuzzTokenizerModel(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    FuzzInput.tokenizer(start, count, fileName: "tokenizer.model")
}

FuzzInput.run(fuzzTokenizerModel)
