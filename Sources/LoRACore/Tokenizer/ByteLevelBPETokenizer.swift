/// Byte-level BPE (GPT-2 style, GGUF `tokenizer.ggml.model = gpt2`, Hugging Face BPE with a
/// ByteLevel pre-tokenizer): text is split by the model's pre-tokenizer, each piece's UTF-8
/// bytes are spelled in GPT-2's byte alphabet, and ranked merges join adjacent symbols
/// (<doc:FileFormats>).
public final class ByteLevelBPETokenizer: Tokenizer, @unchecked Sendable {
    public let vocabularySize: Int
    public let bosTokenID: Int32?
    public let eosTokenID: Int32?
    public let padTokenID: Int32?
    public let addsBOS: Bool
    public let endOfGenerationTokens: Set<Int32>
    let preTokenizer: PreTokenizer
    private let tokens: [String]
    private let ids: [String: Int32]
    /// (left id << 32 | right id) → (rank, merged id)
    private let merges: [UInt64: (rank: Int32, id: Int32)]
    /// Token id of each single byte's symbol (-1 when the vocabulary lacks it).
    private let byteTokens: [Int32]
    /// The bytes each token stands for.
    private let tokenBytes: [[UInt8]]
    private let special: SpecialTokenMatcher
    private let isControl: [Bool]

    /// - Parameters:
    ///   - tokens: the vocabulary, index = id, in GPT-2's byte alphabet.
    ///   - merges: "left right" pairs, highest priority first.
    ///   - specialTokens: ids matched as whole strings before splitting (control and
    ///     user-defined tokens); `controlTokens` of them render only on request.
    init(
        file: String, tokens: [String], merges: [String], preTokenizer: PreTokenizer, specialTokens: Set<Int32>,
        controlTokens: Set<Int32>, bos: Int32?, eos: Int32?, pad: Int32?, addsBOS: Bool,
        endOfGeneration: Set<Int32>
    ) throws(LoRAError) {
        let ids = try indexVocabulary(tokens, special: [("BOS", bos), ("EOS", eos), ("PAD", pad)], file: file)
        vocabularySize = tokens.count
        self.tokens = tokens
        self.preTokenizer = preTokenizer
        self.ids = ids

        let alphabet = Self.byteAlphabet
        var decodeAlphabet: [Unicode.Scalar: UInt8] = [:]
        for (byte, scalar) in alphabet.enumerated() { decodeAlphabet[scalar] = UInt8(byte) }
        byteTokens = alphabet.map { ids[String($0)] ?? -1 }

        var table: [UInt64: (rank: Int32, id: Int32)] = [:]
        table.reserveCapacity(merges.count)
        for (rank, merge) in merges.enumerated() {
            // split at the first space after the first character: a token may start with one
            guard let space = merge.unicodeScalars.dropFirst().firstIndex(of: " ") else {
                throw .invalidTokenizer(file: file, problem: "merge \(rank) \"\(merge)\" is not two tokens")
            }
            let left = String(merge.unicodeScalars[..<space])
            let right = String(merge.unicodeScalars[merge.unicodeScalars.index(after: space)...])
            guard let l = ids[left], let r = ids[right], let merged = ids[left + right] else { continue }
            let key = UInt64(UInt32(l)) << 32 | UInt64(UInt32(r))
            if table[key] == nil { table[key] = (Int32(rank), merged) }
        }
        self.merges = table

        isControl = (0..<tokens.count).map { controlTokens.contains(Int32($0)) }
        tokenBytes = tokens.enumerated().map { id, token in
            if specialTokens.contains(Int32(id)) { return Array(token.utf8) }
            return token.unicodeScalars.map { decodeAlphabet[$0] }.allSatisfy({ $0 != nil })
                ? token.unicodeScalars.map { decodeAlphabet[$0]! } : Array(token.utf8)
        }
        special = SpecialTokenMatcher(specialTokens.map { (tokens[Int($0)], $0) }, control: controlTokens)
        bosTokenID = bos
        eosTokenID = eos
        padTokenID = pad
        self.addsBOS = addsBOS
        endOfGenerationTokens = endOfGeneration
    }

    /// GPT-2's printable spelling of bytes: printable Latin-1 bytes stand for themselves, the
    /// other 68 map in order to U+0100 and up (so a space is `Ġ`, a newline `Ċ`).
    static let byteAlphabet: [Unicode.Scalar] = {
        var next: UInt32 = 0x100
        return (0..<256).map { byte in
            if (0x21...0x7E).contains(byte) || (0xA1...0xAC).contains(byte) || (0xAE...0xFF).contains(byte) {
                return Unicode.Scalar(UInt32(byte))!
            }
            defer { next += 1 }
            return Unicode.Scalar(next)!
        }
    }()

    public func token(_ id: Int32) -> String? { id >= 0 && Int(id) < tokens.count ? tokens[Int(id)] : nil }
    public func id(of token: String) -> Int32? { ids[token] }

    public func bytes(of id: Int32, includeSpecial: Bool) -> [UInt8] {
        guard id >= 0, Int(id) < tokens.count else { return [] }
        return !includeSpecial && isControl[Int(id)] ? [] : tokenBytes[Int(id)]
    }

    public func tokenize(_ text: String, parseSpecial: Bool) -> [Int32] {
        var out: [Int32] = []
        var cache: [String: [Int32]] = [:]
        for fragment in special.split(text, parseSpecial: parseSpecial) {
            switch fragment {
            case .token(let id):
                out.append(id)
            case .text(let text):
                let scalars = Array(text.unicodeScalars)
                for piece in preTokenizer.split(scalars) {
                    let key = String(String.UnicodeScalarView(scalars[piece]))
                    if let cached = cache[key] {
                        out += cached
                        continue
                    }
                    let ids = merge(Array(key.utf8))
                    cache[key] = ids
                    out += ids
                }
            }
        }
        return out
    }

    /// Applies ranked merges to one piece's bytes: always the lowest-rank adjacent pair,
    /// leftmost on ties, until no pair merges.
    private func merge(_ bytes: [UInt8]) -> [Int32] {
        var symbols: [Int32] = []
        symbols.reserveCapacity(bytes.count)
        for byte in bytes {
            let id = byteTokens[Int(byte)]
            if id >= 0 { symbols.append(id) } // a byte the vocabulary lacks is dropped, as llama.cpp does
        }
        while symbols.count > 1 {
            var best: (rank: Int32, index: Int, id: Int32)?
            for i in 0..<symbols.count - 1 {
                let key = UInt64(UInt32(symbols[i])) << 32 | UInt64(UInt32(symbols[i + 1]))
                if let m = merges[key], best == nil || m.rank < best!.rank { best = (m.rank, i, m.id) }
            }
            guard let best else { break }
            symbols[best.index] = best.id
            symbols.remove(at: best.index + 1)
        }
        return symbols
    }
}

/// Finds special tokens' text in a string, longest first at each position.
struct SpecialTokenMatcher: Sendable {
    enum Fragment: Equatable {
        case text(String)
        case token(Int32)
    }

    private let entries: [(bytes: [UInt8], id: Int32, control: Bool)]
    private let firstBytes: Set<UInt8>

    init(_ tokens: [(text: String, id: Int32)], control: Set<Int32>) {
        entries = tokens.filter { !$0.text.isEmpty }
            .map { (Array($0.text.utf8), $0.id, control.contains($0.id)) }
            .sorted { $0.bytes.count > $1.bytes.count }
        firstBytes = Set(entries.map { $0.bytes[0] })
    }

    /// Control tokens are matched only with `parseSpecial`; user-defined ones always.
    func split(_ text: String, parseSpecial: Bool) -> [Fragment] {
        let utf8 = Array(text.utf8)
        var fragments: [Fragment] = []
        var start = 0
        var i = 0
        func flush(_ end: Int) {
            if start < end { fragments.append(.text(String(decoding: utf8[start..<end], as: UTF8.self))) }
        }
        while i < utf8.count {
            if firstBytes.contains(utf8[i]),
                let entry = entries.first(where: {
                    (parseSpecial || !$0.control) && utf8.count - i >= $0.bytes.count
                        && utf8[i..<i + $0.bytes.count].elementsEqual($0.bytes)
                })
            {
                flush(i)
                fragments.append(.token(entry.id))
                i += entry.bytes.count
                start = i
            } else {
                i += 1
            }
        }
        flush(utf8.count)
        return fragments
    }
}
