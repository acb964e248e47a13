import Foundation

/// SentencePiece's `tokenizer.model`: a protobuf ModelProto, read by hand (pieces = 1 with
/// piece = 1, score = 2, type = 3; trainer_spec = 2 with model_type = 3, unk/bos/eos/pad ids
/// 40–43; normalizer_spec = 3 with add_dummy_prefix = 3).
enum SentencePieceModelFile {
    struct Contents {
        var tokens: [String] = [], scores: [Float] = [], types: [Int] = []
        var ids: [Int: Int] = [41: 1, 42: 2, 40: 0, 43: -1] // sentencepiece's defaults
        var modelType = 1, addDummyPrefix = true
    }

    static func tokenizer(_ data: Data, file: String, addsBOS: Bool) throws(LoRAError) -> SentencePieceTokenizer {
        let contents = try data.withUnsafeBytes { bytes in Result { () throws(LoRAError) in try read(bytes, file: file) } }.get()
        guard contents.modelType == 2 else {
            throw .invalidTokenizer(file: file, problem: "sentencepiece model type \(contents.modelType) is not supported (2, BPE, is)")
        }
        let id = { (field: Int) -> Int32? in contents.ids[field].flatMap { $0 >= 0 ? Int32($0) : nil } }
        return try SentencePieceTokenizer(
            file: file, tokens: contents.tokens, priorities: .scores(contents.scores), types: contents.types,
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
                var text = ""
                var score: Float = 0
                var type = 1
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
        var value: UInt64 = 0
        var shift: UInt64 = 0
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
        case 1:
            guard bytes.count - offset >= 8 else { throw .truncatedFile(file: file, what: "a fixed64", offset: offset) }
            offset += 8
        case 2: _ = try lengthDelimited()
        case 5: _ = try fixed32()
        default: throw .malformedFile(file: file, problem: "protobuf wire type \(wire) at byte \(offset)")
        }
    }
}
