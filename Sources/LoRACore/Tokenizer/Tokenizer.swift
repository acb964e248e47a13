/// Text to token ids and back, as the model's reference implementation does it.
public protocol Tokenizer: Sendable {
    var vocabularySize: Int { get }
    var bosTokenID: Int32? { get }
    var eosTokenID: Int32? { get }
    var padTokenID: Int32? { get }
    /// Whether the model's metadata asks for BOS in front of a text.
    var addsBOS: Bool { get }
    /// Tokens that end a generated turn (EOS and the template's end-of-turn tokens).
    var endOfGenerationTokens: Set<Int32> { get }

    /// Ids of `text`, without BOS (see `encode`, which adds it as the model asks). With
    /// `parseSpecial`, the text of a control token (such as `<|im_start|>`) becomes that
    /// token; otherwise it is tokenized as plain text.
    func tokenize(_ text: String, parseSpecial: Bool) -> [Int32]
    /// The bytes a token stands for (control tokens give their text only when `includeSpecial`).
    func bytes(of id: Int32, includeSpecial: Bool) -> [UInt8]
    /// The token's entry in the vocabulary, as stored.
    func token(_ id: Int32) -> String?
    /// The id of a vocabulary entry.
    func id(of token: String) -> Int32?
    /// The text of `ids` (invalid UTF-8 from a cut multi-byte character becomes U+FFFD).
    func decode(_ ids: [Int32], includeSpecial: Bool) -> String
}

extension Tokenizer {
    /// Ids of `text` with BOS in front when the model asks for it.
    public func encode(_ text: String, parseSpecial: Bool = true, addBOS: Bool? = nil) -> [Int32] {
        let ids = tokenize(text, parseSpecial: parseSpecial)
        guard addBOS ?? addsBOS, let bos = bosTokenID else { return ids }
        return [bos] + ids
    }

    public func decode(_ ids: [Int32]) -> String { decode(ids, includeSpecial: false) }

    /// The concatenated bytes of the tokens.
    public func decode(_ ids: [Int32], includeSpecial: Bool) -> String {
        String(decoding: ids.flatMap { bytes(of: $0, includeSpecial: includeSpecial) }, as: UTF8.self)
    }
}

/// The shared set-up of a vocabulary: each special id must name one of its tokens, and a
/// token's first id wins when a vocabulary lists it twice.
func indexVocabulary(_ tokens: [String], special: [(name: String, id: Int32?)], file: String) throws(LoRAError) -> [String: Int32] {
    guard !tokens.isEmpty, tokens.count <= Int(Int32.max) else { throw .invalidTokenizer(file: file, problem: "empty vocabulary") }
    for (name, id) in special {
        if let id, id < 0 || Int(id) >= tokens.count {
            throw .invalidTokenizer(file: file, problem: "\(name) id \(id) is outside the vocabulary of \(tokens.count)")
        }
    }
    var ids: [String: Int32] = [:]
    ids.reserveCapacity(tokens.count)
    for (i, token) in tokens.enumerated() where ids[token] == nil { ids[token] = Int32(i) }
    return ids
}

/// The tokens that end a generated turn: the given ids (EOS, end-of-turn) and every control
/// token whose text templates use to close a turn, as llama.cpp marks them.
func endOfGenerationTokens(_ ids: [Int32?], control: Set<Int32>, tokens: [String]) -> Set<Int32> {
    let markers: Set<String> = ["<|im_end|>", "<|endoftext|>", "<|eot_id|>", "<|eom_id|>", "<|end_of_text|>", "</s>", "<end_of_turn>"]
    return Set(ids.compactMap { $0 }).union(control.filter { markers.contains(tokens[Int($0)]) })
}

/// Turns a stream of token ids into text pieces that never split a UTF-8 character: bytes
/// of an unfinished character wait for the next token.
public struct StreamingDecoder: Sendable {
    private let tokenizer: any Tokenizer
    private var pending: [UInt8] = []

    public init(tokenizer: any Tokenizer) {
        self.tokenizer = tokenizer
    }

    /// The text completed by `id` (possibly empty).
    public mutating func append(_ id: Int32) -> String {
        pending += tokenizer.bytes(of: id, includeSpecial: false)
        let complete = Self.completePrefixLength(pending)
        defer { pending.removeFirst(complete) }
        return String(decoding: pending[..<complete], as: UTF8.self)
    }

    /// Whatever is left at the end of the stream.
    public mutating func finish() -> String {
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
    }

    /// Length of the longest prefix that does not end inside a multi-byte character.
    static func completePrefixLength(_ bytes: [UInt8]) -> Int {
        // look back at most 3 bytes for the lead byte of the last character
        var i = bytes.count - 1
        var continuation = 0
        while i >= 0 && continuation < 3 && bytes[i] & 0xC0 == 0x80 {
            i -= 1
            continuation += 1
        }
        guard i >= 0 else { return bytes.count }
        let lead = bytes[i]
        let length = lead < 0x80 ? 1 : lead >> 5 == 0b110 ? 2 : lead >> 4 == 0b1110 ? 3 : lead >> 3 == 0b11110 ? 4 : 1
        return continuation + 1 < length ? i : bytes.count
    }
}
