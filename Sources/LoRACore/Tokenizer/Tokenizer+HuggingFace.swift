import Foundation

/// The tokenizer and chat format of a Hugging Face checkpoint folder: `tokenizer.json`
/// (byte-level BPE, or SentencePiece BPE converted by transformers) or else `tokenizer.model`
/// (SentencePiece's own protobuf), with `tokenizer_config.json` and `config.json` for the
/// special tokens, BOS and the chat template.
func loadHuggingFaceTokenizer(folder: String, config: Data) throws(LoRAError) -> (any Tokenizer, ChatTemplate?) {
    let settingsPath = "\(folder)/tokenizer_config.json"
    let settings = FileManager.default.contents(atPath: settingsPath)
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
              let text = list.first(where: { $0["name"] as? String == "default" })?["template"] as? String {
        template = ChatTemplate(jinja: text)
    } else if let data = FileManager.default.contents(atPath: "\(folder)/chat_template.jinja") {
        template = ChatTemplate(jinja: String(decoding: data, as: UTF8.self))
    }

    let tokenizer: any Tokenizer
    if let data = FileManager.default.contents(atPath: "\(folder)/tokenizer.json") {
        tokenizer = try tokenizerJSON(data, file: "\(folder)/tokenizer.json", settings: settings, tokenText: tokenText, configID: configID)
    } else if let data = FileManager.default.contents(atPath: "\(folder)/tokenizer.model") {
        tokenizer = try SentencePieceModelFile.tokenizer(data, file: "\(folder)/tokenizer.model",
                                                         addsBOS: settings["add_bos_token"] as? Bool ?? true)
    } else {
        throw .invalidTokenizer(file: folder, problem: "neither tokenizer.json nor tokenizer.model is in the folder")
    }
    return (tokenizer, template)
}

private func tokenizerJSON(_ data: Data, file: String, settings: [String: Any], tokenText: (String) -> String?,
                           configID: (String) -> Int32?) throws(LoRAError) -> any Tokenizer {
    guard let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
          let model = json["model"] as? [String: Any], let vocab = model["vocab"] as? [String: Int] else {
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
              let data = try? JSONSerialization.data(withJSONObject: value) else { return "" }
        return String(decoding: data, as: UTF8.self)
    }
    let preTokenizer = describe("pre_tokenizer"), normalizer = describe("normalizer"), decoder = describe("decoder")
    let endOfGeneration = endOfGenerationTokens([eos], control: control, tokens: tokens)

    if preTokenizer.contains("\"ByteLevel\"") || decoder.contains("\"ByteLevel\"") {
        let pre: PreTokenizer = preTokenizer.contains("\\\\p{N}{1,3}") ? .llama3
            : (preTokenizer.contains("\"Digits\"") && preTokenizer.contains("\"individual_digits\":true")) ? .digitsThenGPT2 : .gpt2
        return try ByteLevelBPETokenizer(file: file, tokens: tokens, merges: merges, preTokenizer: pre, specialTokens: Set(
            types.indices.filter { types[$0] == 3 || types[$0] == 4 }.map(Int32.init)), controlTokens: control, bos: bos, eos: eos,
            pad: pad, addsBOS: settings["add_bos_token"] as? Bool ?? (pre == .llama3), endOfGeneration: endOfGeneration)
    }
    // SentencePiece converted by transformers: "▁" for spaces, byte fallback, ranked merges
    guard normalizer.contains("\u{2581}") || preTokenizer.contains("Metaspace") else {
        throw .invalidTokenizer(file: file, problem: "BPE without ByteLevel or Metaspace/▁ normalization is not supported")
    }
    for (i, token) in tokens.enumerated() where token.count == 6 && token.hasPrefix("<0x") && token.hasSuffix(">") { types[i] = 6 }
    let prefix: SentencePieceTokenizer.SpacePrefix =
        normalizer.contains("\"Prepend\"") ? .everyText
        : !preTokenizer.contains("Metaspace") || preTokenizer.contains("\"never\"") ? .never
        : preTokenizer.contains("\"first\"") ? .firstTextUnlessSpace : .everyTextUnlessSpace
    var ranks: [String: Int] = [:]
    for (rank, merge) in merges.enumerated() where ranks[merge] == nil { ranks[merge] = rank }
    return try SentencePieceTokenizer(file: file, tokens: tokens, priorities: .merges(ranks), types: types, bos: bos, eos: eos,
                                      pad: pad, unknown: id(model["unk_token"] as? String), addsBOS: settings["add_bos_token"] as? Bool ?? true,
                                      spacePrefix: prefix, endOfGeneration: endOfGeneration)
}

/// SentencePiece's `tokenizer.model`: a protobuf ModelProto, read by hand (pieces = 1 with
/// piece = 1, score = 2, type = 3; trainer_spec = 2 with model_type = 3, unk/bos/eos/pad ids
/// 40–43; normalizer_spec = 3 with add_dummy_prefix = 3).
enum SentencePieceModelFile {
    struct Contents {
        var tokens: [String] = [], scores: [Float] = [], types: [Int] = []
        var ids: [Int: Int] = [41: 1, 42: 2, 40: 0, 43: -1]  // sentencepiece's defaults
        var modelType = 1, addDummyPrefix = true
    }

    static func tokenizer(_ data: Data, file: String, addsBOS: Bool) throws(LoRAError) -> SentencePieceTokenizer {
        let contents = try data.withUnsafeBytes { bytes in Result { () throws(LoRAError) in try read(bytes, file: file) } }.get()
        guard contents.modelType == 2 else {
            throw .invalidTokenizer(file: file, problem: "sentencepiece model type \(contents.modelType) is not supported (2, BPE, is)")
        }
        let id = { (field: Int) -> Int32? in contents.ids[field].flatMap { $0 >= 0 ? Int32($0) : nil } }
        return try SentencePieceTokenizer(file: file, tokens: contents.tokens, priorities: .scores(contents.scores), types: contents.types,
                                          bos: id(41), eos: id(42), pad: id(43), unknown: id(40), addsBOS: addsBOS,
                                          spacePrefix: contents.addDummyPrefix ? .everyText : .never,
                                          endOfGeneration: Set([id(42)].compactMap { $0 }))
    }

    static func read(_ bytes: UnsafeRawBufferPointer, file: String) throws(LoRAError) -> Contents {
        var c = Contents()
        var reader = ProtobufReader(file: file, bytes: bytes)
        while let (field, wire) = try reader.next() {
            switch (field, wire) {
            case (1, 2):
                var piece = try reader.message()
                var text = "", score: Float = 0, type = 1
                while let (f, w) = try piece.next() {
                    switch (f, w) {
                    case (1, 2): text = String(decoding: try piece.lengthDelimited(), as: UTF8.self)
                    case (2, 5): score = Float(bitPattern: try piece.fixed32())
                    case (3, 0): type = Int(try piece.varint())
                    default: try piece.skip(w)
                    }
                }
                c.tokens.append(text)
                c.scores.append(score)
                c.types.append(type)
            case (2, 2):
                var spec = try reader.message()
                while let (f, w) = try spec.next() {
                    if w == 0, f == 3 || (40...43).contains(f) {
                        let value = Int(Int32(truncatingIfNeeded: try spec.varint()))
                        if f == 3 { c.modelType = value } else { c.ids[f] = value }
                    } else {
                        try spec.skip(w)
                    }
                }
            case (3, 2):
                var spec = try reader.message()
                while let (f, w) = try spec.next() {
                    if f == 3, w == 0 { c.addDummyPrefix = try spec.varint() != 0 } else { try spec.skip(w) }
                }
            default:
                try reader.skip(wire)
            }
        }
        return c
    }
}

/// The few protobuf wire types a SentencePiece model uses, bounds-checked.
struct ProtobufReader {
    let file: String
    let bytes: UnsafeRawBufferPointer
    var offset = 0

    mutating func varint() throws(LoRAError) -> UInt64 {
        var value: UInt64 = 0, shift: UInt64 = 0
        while true {
            guard offset < bytes.count, shift < 64 else { throw .truncatedFile(file: file, what: "a varint", offset: offset) }
            let byte = bytes[offset]
            offset += 1
            value |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
        }
    }

    mutating func next() throws(LoRAError) -> (field: Int, wire: Int)? {
        guard offset < bytes.count else { return nil }
        let key = try varint()
        return (Int(key >> 3), Int(key & 7))
    }

    mutating func lengthDelimited() throws(LoRAError) -> UnsafeRawBufferPointer {
        let length = try varint()
        guard length <= UInt64(bytes.count - offset) else { throw .truncatedFile(file: file, what: "a field", offset: offset) }
        defer { offset += Int(length) }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + Int(length)])
    }

    mutating func message() throws(LoRAError) -> ProtobufReader {
        ProtobufReader(file: file, bytes: try lengthDelimited())
    }

    mutating func fixed32() throws(LoRAError) -> UInt32 {
        guard bytes.count - offset >= 4 else { throw .truncatedFile(file: file, what: "a fixed32", offset: offset) }
        defer { offset += 4 }
        return UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
    }

    mutating func skip(_ wire: Int) throws(LoRAError) {
        switch wire {
        case 0: _ = try varint()
        case 1: guard bytes.count - offset >= 8 else { throw .truncatedFile(file: file, what: "a fixed64", offset: offset) }; offset += 8
        case 2: _ = try lengthDelimited()
        case 5: _ = try fixed32()
        default: throw .malformedFile(file: file, problem: "protobuf wire type \(wire) at byte \(offset)")
        }
    }
}

/// The tokenizer of a Hugging Face folder (tokenizer.json or tokenizer.model, with
/// tokenizer_config.json and config.json when present).
public func makeTokenizer(huggingFaceFolder folder: String) throws(LoRAError) -> any Tokenizer {
    let config = FileManager.default.contents(atPath: "\(folder)/config.json") ?? Data("{}".utf8)
    return try loadHuggingFaceTokenizer(folder: folder, config: config).0
}
