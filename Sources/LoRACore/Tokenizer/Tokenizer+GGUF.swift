/// Builds the tokenizer a GGUF file describes in its `tokenizer.ggml.*` keys.
public func makeTokenizer(gguf: GGUFFile) throws(LoRAError) -> any Tokenizer {
    let file = gguf.path
    func strings(_ key: String) throws(LoRAError) -> [String] {
        guard let values = gguf[key]?.arrayValue else { throw .invalidTokenizer(file: file, problem: "\(key) is missing") }
        var out: [String] = []
        out.reserveCapacity(values.count)
        for value in values {
            guard let s = value.stringValue else { throw .invalidTokenizer(file: file, problem: "\(key) holds a non-string") }
            out.append(s)
        }
        return out
    }
    func id(_ key: String) -> Int32? { gguf[key]?.intValue.flatMap { Int32(exactly: $0) } }

    guard let model = gguf["tokenizer.ggml.model"]?.stringValue else {
        throw .invalidTokenizer(file: file, problem: "tokenizer.ggml.model is missing")
    }
    let tokens = try strings("tokenizer.ggml.tokens")
    let types = gguf["tokenizer.ggml.token_type"]?.arrayValue?.map { $0.intValue ?? 1 } ?? []
    guard types.isEmpty || types.count == tokens.count else {
        throw .invalidTokenizer(file: file, problem: "\(types.count) token types for \(tokens.count) tokens")
    }
    // token_type: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte
    let control = Set(types.indices.filter { types[$0] == 3 }.map { Int32($0) })
    let userDefined = Set(types.indices.filter { types[$0] == 4 }.map { Int32($0) })
    let eos = id("tokenizer.ggml.eos_token_id")
    let endOfGeneration = endOfGenerationTokens(
        [eos, id("tokenizer.ggml.eot_token_id"), id("tokenizer.ggml.eom_token_id")],
        control: control, tokens: tokens)

    switch model {
    case "gpt2":
        let preName = gguf["tokenizer.ggml.pre"]?.stringValue ?? "default"
        guard let pre = PreTokenizer(ggufName: preName) else {
            throw .invalidTokenizer(file: file, problem: "pre-tokenizer \"\(preName)\" is not supported")
        }
        return try ByteLevelBPETokenizer(
            file: file, tokens: tokens, merges: try strings("tokenizer.ggml.merges"), preTokenizer: pre,
            specialTokens: control.union(userDefined), controlTokens: control,
            bos: id("tokenizer.ggml.bos_token_id"), eos: eos, pad: id("tokenizer.ggml.padding_token_id"),
            addsBOS: gguf["tokenizer.ggml.add_bos_token"]?.boolValue ?? (pre == .llama3),
            endOfGeneration: endOfGeneration)
    case "llama":
        guard let scores = gguf["tokenizer.ggml.scores"]?.arrayValue?.map({ Float($0.floatValue ?? 0) }) else {
            throw .invalidTokenizer(file: file, problem: "tokenizer.ggml.scores is missing")
        }
        // llama.cpp's defaults for SentencePiece models, overridable by the file
        return try SentencePieceTokenizer(
            file: file, tokens: tokens, priorities: .scores(scores), types: types,
            bos: id("tokenizer.ggml.bos_token_id") ?? 1, eos: eos ?? 2, pad: id("tokenizer.ggml.padding_token_id"),
            unknown: id("tokenizer.ggml.unknown_token_id") ?? 0,
            addsBOS: gguf["tokenizer.ggml.add_bos_token"]?.boolValue ?? true,
            spacePrefix: gguf["tokenizer.ggml.add_space_prefix"]?.boolValue ?? true ? .everyText : .never,
            endOfGeneration: endOfGeneration.union([eos ?? 2]))
    default:
        throw .invalidTokenizer(file: file, problem: "tokenizer model \"\(model)\" is not supported")
    }
}
