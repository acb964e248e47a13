/// SentencePiece BPE as Llama 1/2 use it (GGUF `tokenizer.ggml.model = llama`,
/// `tokenizer.model`, or a Hugging Face `tokenizer.json` converted from one): spaces become
/// `▁`, one is put in front of the text, characters merge pairwise by priority, and
/// characters outside the vocabulary fall back to `<0xXX>` byte tokens (<doc:FileFormats>).
public final class SentencePieceTokenizer: Tokenizer, @unchecked Sendable {
    public let vocabularySize: Int
    public let bosTokenID: Int32?
    public let eosTokenID: Int32?
    public let padTokenID: Int32?
    public let addsBOS: Bool
    public let endOfGenerationTokens: Set<Int32>

    /// Where a "▁" goes in front of text. sentencepiece and llama.cpp put one before the
    /// text and after every special token; transformers' Metaspace conversion skips it when
    /// the text already starts with a space, and with `prepend_scheme: first` it only
    /// prefixes the start of the input.
    public enum SpacePrefix: Sendable { case never, everyText, everyTextUnlessSpace, firstTextUnlessSpace }
    let spacePrefix: SpacePrefix
    private let tokens: [String]
    private let ids: [String: Int32]
    /// How eagerly two adjacent pieces merge: sentencepiece ranks a pair by the score of the
    /// piece it makes; a converted tokenizer.json by the rank of its merge. Higher first.
    enum Priorities {
        case scores([Float])
        case merges([String: Int]) // "left right" → rank
    }
    private let priorities: Priorities
    private let byteTokens: [Int32] // <0xXX> ids, -1 when absent
    private let tokenBytes: [[UInt8]]
    private let special: SpecialTokenMatcher
    private let isControl: [Bool]
    private let unknown: Int32?

    init(
        file: String, tokens: [String], priorities: Priorities, types: [Int], bos: Int32?, eos: Int32?, pad: Int32?,
        unknown: Int32?, addsBOS: Bool, spacePrefix: SpacePrefix, endOfGeneration: Set<Int32>
    ) throws(LoRAError) {
        guard types.isEmpty || types.count == tokens.count else {
            throw .invalidTokenizer(file: file, problem: "\(tokens.count) tokens, \(types.count) token types")
        }
        if case .scores(let scores) = priorities, scores.count != tokens.count {
            throw .invalidTokenizer(file: file, problem: "\(scores.count) scores for \(tokens.count) tokens")
        }
        let ids = try indexVocabulary(tokens, special: [("BOS", bos), ("EOS", eos), ("PAD", pad), ("UNK", unknown)], file: file)
        vocabularySize = tokens.count
        self.tokens = tokens
        self.priorities = priorities
        self.ids = ids
        byteTokens = (0..<256).map { ids[String(format: "<0x%02X", $0) + ">"] ?? -1 }
        // token_type: 2 unknown, 3 control, 4 user-defined, 6 byte
        let type = { (i: Int) in types.isEmpty ? 1 : types[i] }
        isControl = tokens.indices.map { type($0) == 3 || type($0) == 2 }
        tokenBytes = tokens.enumerated().map { i, token in
            if type(i) == 6, token.count == 6, token.hasPrefix("<0x"), let byte = UInt8(token.dropFirst(3).prefix(2), radix: 16) {
                return [byte]
            }
            return Array(token.replacingOccurrences(of: "\u{2581}", with: " ").utf8)
        }
        let specials = tokens.indices.filter { [3, 4].contains(type($0)) }.map { (tokens[$0], Int32($0)) }
        special = SpecialTokenMatcher(specials, control: Set(tokens.indices.filter { type($0) == 3 }.map { Int32($0) }))
        bosTokenID = bos
        eosTokenID = eos
        padTokenID = pad
        self.unknown = unknown
        self.addsBOS = addsBOS
        self.spacePrefix = spacePrefix
        endOfGenerationTokens = endOfGeneration
    }

    public func token(_ id: Int32) -> String? { id >= 0 && Int(id) < tokens.count ? tokens[Int(id)] : nil }
    public func id(of token: String) -> Int32? { ids[token] }

    public func bytes(of id: Int32, includeSpecial: Bool) -> [UInt8] {
        guard id >= 0, Int(id) < tokens.count else { return [] }
        return !includeSpecial && isControl[Int(id)] ? [] : tokenBytes[Int(id)]
    }

    /// The text of `ids`, without the space the encoder put in front.
    public func decode(_ ids: [Int32], includeSpecial: Bool) -> String {
        var bytes = ids.flatMap { self.bytes(of: $0, includeSpecial: includeSpecial) }
        if spacePrefix != .never, let first = ids.first(where: { !isControl[Int($0)] || includeSpecial }),
            tokens[Int(first)].hasPrefix("\u{2581}"), bytes.first == 0x20
        {
            bytes.removeFirst()
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    public func tokenize(_ text: String, parseSpecial: Bool) -> [Int32] {
        var out: [Int32] = []
        var first = true
        var afterSpecial = true
        for fragment in special.split(text, parseSpecial: parseSpecial) {
            switch fragment {
            case .token(let id):
                out.append(id)
                afterSpecial = true
            case .text(let text):
                let prefix: Bool
                switch spacePrefix {
                case .never: prefix = false
                case .everyText: prefix = afterSpecial
                case .everyTextUnlessSpace: prefix = afterSpecial && !text.hasPrefix(" ")
                case .firstTextUnlessSpace: prefix = first && !text.hasPrefix(" ")
                }
                out += merge(((prefix ? " " : "") + text).replacingOccurrences(of: " ", with: "\u{2581}"))
                afterSpecial = false
            }
            first = false
        }
        return out
    }

    private func priority(_ left: String, _ right: String) -> Float? {
        switch priorities {
        case .scores(let scores):
            return ids[left + right].map { scores[Int($0)] }
        case .merges(let ranks):
            guard ids[left + right] != nil, let rank = ranks[left + " " + right] else { return nil }
            return -Float(rank)
        }
    }

    /// sentencepiece's BPE: repeatedly merge the adjacent pair of highest priority
    /// (leftmost on ties), then map pieces to ids, splitting unknown ones along the merges
    /// that made them, and spelling what is still unknown as bytes. A heap of candidate
    /// pairs over a linked list of pieces keeps long texts O(n log n).
    private func merge(_ text: String) -> [Int32] {
        var pieces = text.unicodeScalars.map { String($0) }
        guard !pieces.isEmpty else { return [] }
        var next = Array(1...pieces.count)
        var previous = Array(-1..<pieces.count - 1)
        next[pieces.count - 1] = -1
        var heap = PairHeap()
        var made: [String: (String, String)] = [:]
        func consider(_ left: Int, _ right: Int) {
            guard left >= 0, right >= 0, let p = priority(pieces[left], pieces[right]) else { return }
            heap.push(.init(priority: p, left: left, leftLength: pieces[left].utf8.count, rightLength: pieces[right].utf8.count))
        }
        for i in 0..<pieces.count - 1 { consider(i, i + 1) }
        while let pair = heap.pop() {
            let right = next[pair.left]
            // stale: one side has merged since the pair was queued
            guard right >= 0, !pieces[pair.left].isEmpty, pieces[pair.left].utf8.count == pair.leftLength,
                pieces[right].utf8.count == pair.rightLength
            else { continue }
            made[pieces[pair.left] + pieces[right]] = (pieces[pair.left], pieces[right])
            pieces[pair.left] += pieces[right]
            pieces[right] = ""
            next[pair.left] = next[right]
            if next[right] >= 0 { previous[next[right]] = pair.left }
            consider(previous[pair.left], pair.left)
            consider(pair.left, next[pair.left])
        }
        var out: [Int32] = []
        func emit(_ piece: String) {
            if let id = ids[piece] {
                out.append(id)
            } else if let (left, right) = made[piece] {
                emit(left)
                emit(right)
            } else {
                for byte in piece.utf8 {
                    let id = byteTokens[Int(byte)]
                    if id >= 0 { out.append(id) } else if let unknown { out.append(unknown) }
                }
            }
        }
        var i = 0
        while i >= 0 {
            emit(pieces[i])
            i = next[i]
        }
        return out
    }
}

/// A max-heap of candidate merges: highest priority first, leftmost first on ties.
struct PairHeap {
    struct Pair {
        let priority: Float
        let left: Int
        let leftLength: Int
        let rightLength: Int

        func precedes(_ other: Pair) -> Bool {
            priority > other.priority || (priority == other.priority && left < other.left)
        }
    }

    private var items: [Pair] = []

    mutating func push(_ pair: Pair) {
        items.append(pair)
        var i = items.count - 1
        while i > 0, items[i].precedes(items[(i - 1) / 2]) {
            items.swapAt(i, (i - 1) / 2)
            i = (i - 1) / 2
        }
    }

    mutating func pop() -> Pair? {
        guard let top = items.first else { return nil }
        items[0] = items[items.count - 1]
        items.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1
            let r = l + 1
            var best = i
            if l < items.count, items[l].precedes(items[best]) { best = l }
            if r < items.count, items[r].precedes(items[best]) { best = r }
            if best == i { return top }
            items.swapAt(i, best)
            i = best
        }
    }
}
