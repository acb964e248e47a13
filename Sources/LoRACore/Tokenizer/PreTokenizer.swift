/// The regex splits byte-level BPE models apply before merging, written out by hand (the
/// patterns are fixed per model family, and Foundation's regex on Linux is slow and lacks
/// some of their constructs). Each pass splits every piece of the previous one, keeping
/// matches and the unmatched gaps between them, as llama.cpp's `unicode_regex_split` does.
public enum PreTokenizer: String, Sendable {
    /// GPT-2's pattern alone.
    case gpt2
    /// Every digit alone, then GPT-2's pattern: SmolLM2 and StarCoder (GGUF `smollm`,
    /// `starcoder`, `refact`, …).
    case digitsThenGPT2
    /// Llama 3's pattern: case-insensitive contractions, digits in runs of up to 3.
    case llama3

    /// The pre-tokenizer a GGUF `tokenizer.ggml.pre` value names.
    init?(ggufName: String) {
        switch ggufName {
        case "gpt-2", "gpt2", "phi-2", "jina-es", "jina-de", "olmo", "jais", "trillion", "granite", "mpt":
            self = .gpt2
        case "smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b":
            self = .digitsThenGPT2
        case "llama3", "llama-v3", "llama-bpe", "falcon3", "pixtral":
            self = .llama3
        default:
            return nil
        }
    }

    /// Splits `text` into pieces (ranges of its Unicode scalars).
    func split(_ scalars: [Unicode.Scalar]) -> [Range<Int>] {
        let whole = [0..<scalars.count]
        switch self {
        case .gpt2: return Self.apply(Self.gpt2Match, to: whole, in: scalars)
        case .digitsThenGPT2: return Self.apply(Self.gpt2Match, to: Self.apply(Self.singleDigit, to: whole, in: scalars), in: scalars)
        case .llama3: return Self.apply(Self.llama3Match, to: whole, in: scalars)
        }
    }

    /// A pattern: the end of its match starting at `i` inside `piece`, or nil.
    typealias Matcher = @Sendable (_ s: [Unicode.Scalar], _ i: Int, _ piece: Range<Int>) -> Int?

    static func apply(_ match: Matcher, to pieces: [Range<Int>], in s: [Unicode.Scalar]) -> [Range<Int>] {
        var out: [Range<Int>] = []
        out.reserveCapacity(pieces.count * 2)
        for piece in pieces {
            var i = piece.lowerBound
            var gapStart = piece.lowerBound
            while i < piece.upperBound {
                if let end = match(s, i, piece), end > i {
                    if gapStart < i { out.append(gapStart..<i) }
                    out.append(i..<end)
                    i = end
                    gapStart = end
                } else {
                    i += 1
                }
            }
            if gapStart < piece.upperBound { out.append(gapStart..<piece.upperBound) }
        }
        return out
    }

    static func isLetter(_ c: Unicode.Scalar) -> Bool {
        if c.isASCII { return (c.value | 0x20) >= 0x61 && (c.value | 0x20) <= 0x7A }
        switch c.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    static func isNumber(_ c: Unicode.Scalar) -> Bool {
        if c.isASCII { return c.value >= 0x30 && c.value <= 0x39 }
        switch c.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    static func isSpace(_ c: Unicode.Scalar) -> Bool {
        c.isASCII ? (c == " " || (c.value >= 0x09 && c.value <= 0x0D)) : c.properties.isWhitespace
    }

    static func isOther(_ c: Unicode.Scalar) -> Bool { !isSpace(c) && !isLetter(c) && !isNumber(c) }

    /// `\p{N}`
    static let singleDigit: Matcher = { s, i, _ in isNumber(s[i]) ? i + 1 : nil }

    /// End of the run of scalars from `i` satisfying `test`, at most `limit` long.
    static func run(
        _ s: [Unicode.Scalar], from i: Int, to end: Int, limit: Int = .max,
        _ test: (Unicode.Scalar) -> Bool
    ) -> Int {
        var j = i
        while j < end && j - i < limit && test(s[j]) { j += 1 }
        return j
    }

    /// `'s|'t|'re|'ve|'m|'ll|'d` (case-insensitive for Llama 3): the end of a contraction at i.
    static func contraction(_ s: [Unicode.Scalar], _ i: Int, _ end: Int, ignoringCase: Bool) -> Int? {
        guard s[i] == "'", i + 1 < end else { return nil }
        func at(_ k: Int) -> Unicode.Scalar? {
            guard i + k < end else { return nil }
            let c = s[i + k]
            return ignoringCase && c.isASCII ? Unicode.Scalar(UInt8(c.value) | (c.value >= 0x41 && c.value <= 0x5A ? 0x20 : 0)) : c
        }
        switch at(1) {
        case "s", "t", "m", "d": return i + 2
        case "r": return at(2) == "e" ? i + 3 : nil
        case "v": return at(2) == "e" ? i + 3 : nil
        case "l": return at(2) == "l" ? i + 3 : nil
        default: return nil
        }
    }

    /// `\s+(?!\S)` (a whitespace run, minus its last scalar when a non-space follows).
    static func spacesNotBeforeText(_ s: [Unicode.Scalar], _ i: Int, _ end: Int) -> Int? {
        let j = run(s, from: i, to: end, isSpace)
        guard j > i else { return nil }
        if j == end { return j }
        return j - 1 > i ? j - 1 : nil
    }

    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)`
    static let gpt2Match: Matcher = { s, i, piece in
        let end = piece.upperBound
        if let j = contraction(s, i, end, ignoringCase: false) { return j }
        let k = s[i] == " " && i + 1 < end ? i + 1 : i
        for test in [isLetter, isNumber, isOther] as [(Unicode.Scalar) -> Bool] {
            let j = run(s, from: k, to: end, test)
            if j > k { return j }
        }
        return spacesNotBeforeText(s, i, end)
    }

    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    static let llama3Match: Matcher = { s, i, piece in
        let end = piece.upperBound
        func isNewline(_ c: Unicode.Scalar) -> Bool { c == "\r" || c == "\n" }
        if let j = contraction(s, i, end, ignoringCase: true) { return j }
        // [^\r\n\p{L}\p{N}]?\p{L}+
        let k = !isNewline(s[i]) && !isLetter(s[i]) && !isNumber(s[i]) && i + 1 < end ? i + 1 : i
        var j = run(s, from: k, to: end, isLetter)
        if j > k { return j }
        j = run(s, from: i, to: end, limit: 3, isNumber)
        if j > i { return j }
        // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
        let m = s[i] == " " && i + 1 < end ? i + 1 : i
        j = run(s, from: m, to: end, isOther)
        if j > m { return run(s, from: j, to: end, isNewline) }
        // `\s*[\r\n]+`: the whitespace run up to and including its last newline
        let spaces = run(s, from: i, to: end, isSpace)
        if let lastNewline = (i..<spaces).last(where: { isNewline(s[$0]) }) { return lastNewline + 1 }
        if let j = spacesNotBeforeText(s, i, end) { return j }
        return spaces > i ? spaces : nil
    }
}
