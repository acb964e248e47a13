import Foundation
import LoRACore
import Testing

/// Our hand-written pre-tokenizers and the tokenizer.json loader against Hugging Face
/// `tokenizers` on tokenizers it trained (scripts/make-byte-level-bpe-fixtures.py).
struct ByteLevelBPETests {
    struct Case: Decodable {
        let text: String
        let ids: [Int32]
    }
    struct Reference: Decodable { let cases: [Case] }

    @Test(arguments: ["gpt2", "smollm", "llama3"])
    func idsMatchHuggingFaceTokenizers(kind: String) throws {
        let tokenizer = try makeTokenizer(huggingFaceFolder: Fixtures.url("byte-level-bpe/\(kind)").path)
        #expect(tokenizer is ByteLevelBPETokenizer)
        for item in try Fixtures.json("byte-level-bpe/\(kind)/reference.json", as: Reference.self).cases {
            #expect(tokenizer.encode(item.text, parseSpecial: true, addBOS: false) == item.ids, "\(kind) \(item.text.debugDescription)")
            #expect(tokenizer.decode(item.ids) == item.text)
        }
    }

    @Test func streamingNeverSplitsACharacter() throws {
        let tokenizer = try makeTokenizer(huggingFaceFolder: Fixtures.url("byte-level-bpe/gpt2").path)
        let text = "naïve 😀👍🏽 中文 done"
        let ids = tokenizer.encode(text, parseSpecial: false, addBOS: false)
        var decoder = StreamingDecoder(tokenizer: tokenizer)
        var pieces: [String] = []
        for id in ids { pieces.append(decoder.append(id)) }
        pieces.append(decoder.finish())
        #expect(pieces.joined() == text)
        #expect(!pieces.contains { $0.contains("\u{FFFD}") })
        #expect(ids.count > pieces.filter { !$0.isEmpty }.count) // some tokens end inside a character
    }
}
