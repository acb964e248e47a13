import Foundation

/// The tokenizer and chat format of a Hugging Face checkpoint folder: `tokenizer.json`
/// (byte-level BPE, or SentencePiece BPE converted by transformers) or else `tokenizer.model`
/// (SentencePiece's own protobuf), with `tokenizer_config.json` and `config.json` for the
/// special tokens, BOS and the chat template.
func loadHuggingFaceTokenizer(folder: String) throws(LoRAError) -> (any Tokenizer, ChatTemplate?) {
    let config = FileManager.default.contents(atPath: "\(folder)/config.json") ?? Data("{}".utf8)
    let settingsPath = "\(folder)/tokenizer_config.json"
    let settings =
        FileManager.default.contents(atPath: settingsPath)
        .flatMap { try? JSONSerialization.jsonObject(with: $0) as? [String: Any] } ?? [:]
    let modelConfig = (try? JSONSerialization.jsonObject(with: config) as? [String: Any]) ?? [:]
    func tokenText(_ key: String) -> String? {
        (settings[key] as? String) ?? ((settings[key] as? [String: Any])?["content"] as? String)
    }
    func configID(_ key: String) -> Int32? {
        if let id = modelConfig[key] as? Int { return Int32(id) }
        return (modelConfig[key] as? [Int])?.first.map(Int32.init)
    }

    var template: ChatTemplate?
    if let text = settings["chat_template"] as? String {
        template = ChatTemplate(jinja: text)
    } else if let list = settings["chat_template"] as? [[String: Any]],
        let text = list.first(where: { $0["name"] as? String == "default" })?["template"] as? String
    {
        template = ChatTemplate(jinja: text)
    } else if let data = FileManager.default.contents(atPath: "\(folder)/chat_template.jinja") {
        template = ChatTemplate(jinja: String(decoding: data, as: UTF8.self))
    }

    let tokenizer: any Tokenizer
    if let data = FileManager.default.contents(atPath: "\(folder)/tokenizer.json") {
        tokenizer = try tokenizerJSON(data, file: "\(folder)/tokenizer.json", settings: settings, tokenText: tokenText, configID: configID)
    } else if let data = FileManager.default.contents(atPath: "\(folder)/tokenizer.model") {
        tokenizer = try SentencePieceModelFile.tokenizer(
            data, file: "\(folder)/tokenizer.model",
            addsBOS: settings["add_bos_token"] as? Bool ?? true)
    } else {
        throw .invalidTokenizer(file: folder, problem: "neither tokenizer.json nor tokenizer.model is in the folder")
    }
    return (tokenizer, template)
}

private func tokenizerJSON(
    _ data: Data, file: String, settings: [String: Any], tokenText: (String) -> String?,
    configID: (String) -> Int32?
) throws(LoRAError) -> any Tokenizer {
    guard let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
        let model = json["model"] as? [String: Any], let vocab = model["vocab"] as? [String: Int]
    else {
        throw .invalidTokenizer(file: file, problem: "no model.vocab object")
    }
    guard model["type"] as? String == "BPE" else {
        throw .invalidTokenizer(file: file, problem: "model type \(model["type"] ?? "none") is not supported (BPE is)")
    }
    let added = (json["added_tokens"] as? [[String: Any]]) ?? []
    let size = max(vocab.values.max() ?? -1, added.compactMap { $0["id"] as? Int }.max() ?? -1) + 1
    guard size > 0, size <= 1 << 24 else { throw .invalidTokenizer(file: file, problem: "vocabulary of \(size) tokens") }
    var tokens = [String](repeating: "", count: size)
    for (token, id) in vocab where id >= 0 { tokens[id] = token }
    var types = [Int](repeating: 1, count: size)
    for token in added {
        guard let id = token["id"] as? Int, id >= 0, let content = token["content"] as? String else { continue }
        tokens[id] = content
        types[id] = token["special"] as? Bool == true ? 3 : 4
    }
    // merges: "a b" strings, or [a, b] pairs in newer files
    let merges: [String] = ((model["merges"] as? [Any]) ?? []).compactMap {
        if let s = $0 as? String { return s }
        if let pair = $0 as? [String], pair.count == 2 { return pair[0] + " " + pair[1] }
        return nil
    }
    let id = { (text: String?) in text.flatMap { t in tokens.firstIndex(of: t).map(Int32.init) } }
    let bos = configID("bos_token_id") ?? id(tokenText("bos_token"))
    let eos = configID("eos_token_id") ?? id(tokenText("eos_token"))
    let pad = configID("pad_token_id") ?? id(tokenText("pad_token"))
    let control = Set(types.indices.filter { types[$0] == 3 }.map(Int32.init))
    // the pre-tokenizer, normalizer and decoder as JSON text, to recognize by their parts
    let describe = { (key: String) -> String in
        guard let value = json[key], JSONSerialization.isValidJSONObject(value),
            let data = try? JSONSerialization.data(withJSONObject: value)
        else { return "" }
        return String(decoding: data, as: UTF8.self)
    }
    let preTokenizer = describe("pre_tokenizer")
    let normalizer = describe("normalizer")
    let decoder = describe("decoder")
    let endOfGeneration = endOfGenerationTokens([eos], control: control, tokens: tokens)

    if preTokenizer.contains("\"ByteLevel\"") || decoder.contains("\"ByteLevel\"") {
        let pre: PreTokenizer =
            preTokenizer.contains("\\\\p{N}{1,3}")
            ? .llama3
            : (preTokenizer.contains("\"Digits\"") && preTokenizer.contains("\"individual_digits\":true")) ? .digitsThenGPT2 : .gpt2
        return try ByteLevelBPETokenizer(
            file: file, tokens: tokens, merges: merges, preTokenizer: pre,
            specialTokens: Set(
                types.indices.filter { types[$0] == 3 || types[$0] == 4 }.map(Int32.init)), controlTokens: control, bos: bos, eos: eos,
            pad: pad, addsBOS: settings["add_bos_token"] as? Bool ?? (pre == .llama3), endOfGeneration: endOfGeneration)
    }
    // SentencePiece converted by transformers: "▁" for spaces, byte fallback, ranked merges
    guard normalizer.contains("\u{2581}") || preTokenizer.contains("Metaspace") else {
        throw .invalidTokenizer(file: file, problem: "BPE without ByteLevel or Metaspace/▁ normalization is not supported")
    }
    for (i, token) in tokens.enumerated() where token.count == 6 && token.hasPrefix("<0x") && token.hasSuffix(">") { types[i] = 6 }
    let prefix: SentencePieceTokenizer.SpacePrefix =
        normalizer.contains("\"Prepend\"")
        ? .everyText
        : !preTokenizer.contains("Metaspace") || preTokenizer.contains("\"never\"")
            ? .never
            : preTokenizer.contains("\"first\"") ? .firstTextUnlessSpace : .everyTextUnlessSpace
    var ranks: [String: Int] = [:]
    for (rank, merge) in merges.enumerated() where ranks[merge] == nil { ranks[merge] = rank }
    return try SentencePieceTokenizer(
        file: file, tokens: tokens, priorities: .merges(ranks), types: types, bos: bos, eos: eos,
        pad: pad, unknown: id(model["unk_token"] as? String), addsBOS: settings["add_bos_token"] as? Bool ?? true,
        spacePrefix: prefix, endOfGeneration: endOfGeneration)
}

/// The tokenizer of a Hugging Face folder (tokenizer.json or tokenizer.model, with
/// tokenizer_config.json and config.json when present).
public func makeTokenizer(huggingFaceFolder folder: String) throws(LoRAError) -> any Tokenizer {
    try loadHuggingFaceTokenizer(folder: folder).0
}
