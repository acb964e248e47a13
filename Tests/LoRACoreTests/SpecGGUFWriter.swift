import CKernels
import Foundation
import LoRACore

/// Writes GGUF v3 files for tests, following the spec (LoRACore.docc/FileFormats.md) independently of the
/// reader: metadata of every value type, tensors in F32, F16 or Q8_0.
struct SpecGGUFWriter {
    enum Value {
        case u8(UInt8)
        case i8(Int8)
        case u16(UInt16)
        case i16(Int16)
        case u32(UInt32)
        case i32(Int32)
        case f32(Float)
        case bool(Bool)
        case string(String)
        case array(elementType: UInt32, [Value])
        case u64(UInt64)
        case i64(Int64)
        case f64(Double)

        var typeID: UInt32 {
            switch self {
            case .u8: 0
            case .i8: 1
            case .u16: 2
            case .i16: 3
            case .u32: 4
            case .i32: 5
            case .f32: 6
            case .bool: 7
            case .string: 8
            case .array: 9
            case .u64: 10
            case .i64: 11
            case .f64: 12
            }
        }
    }

    enum StoredType: UInt32 {
        case f32 = 0
        case f16 = 1
        case q4_0 = 2
        case q8_0 = 8
        case bf16 = 30
    }

    var metadata: [(String, Value)] = []
    var tensors: [(name: String, shape: [Int], type: StoredType, values: [Float])] = []
    var alignment = 32

    mutating func set(_ key: String, _ value: Value) { metadata.append((key, value)) }

    /// `shape` outermost first ([out, in]), as the library reports it.
    mutating func add(_ name: String, shape: [Int], type: StoredType = .f32, values: [Float]) {
        precondition(shape.reduce(1, *) == values.count)
        tensors.append((name, shape, type, values))
    }

    func data() -> Data {
        var out = Data()
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func string(_ s: String) {
            u64(UInt64(s.utf8.count))
            out.append(contentsOf: s.utf8)
        }
        func value(_ v: Value) {
            switch v {
            case .u8(let x): out.append(x)
            case .i8(let x): out.append(UInt8(bitPattern: x))
            case .u16(let x): withUnsafeBytes(of: x.littleEndian) { out.append(contentsOf: $0) }
            case .i16(let x): withUnsafeBytes(of: x.littleEndian) { out.append(contentsOf: $0) }
            case .u32(let x): u32(x)
            case .i32(let x): u32(UInt32(bitPattern: x))
            case .f32(let x): u32(x.bitPattern)
            case .bool(let x): out.append(x ? 1 : 0)
            case .string(let s): string(s)
            case .array(let type, let items):
                u32(type)
                u64(UInt64(items.count))
                items.forEach(value)
            case .u64(let x): u64(x)
            case .i64(let x): u64(UInt64(bitPattern: x))
            case .f64(let x): u64(x.bitPattern)
            }
        }
        out.append(contentsOf: Array("GGUF".utf8))
        u32(3)
        u64(UInt64(tensors.count))
        u64(UInt64(metadata.count))
        for (key, v) in metadata {
            string(key)
            u32(v.typeID)
            value(v)
        }
        let blobs = tensors.map(Self.encode)
        var offset = 0
        for (tensor, blob) in zip(tensors, blobs) {
            string(tensor.name)
            u32(UInt32(tensor.shape.count))
            for dim in tensor.shape.reversed() { u64(UInt64(dim)) } // GGUF lists the contiguous axis first
            u32(tensor.type.rawValue)
            u64(UInt64(offset))
            offset += (blob.count + alignment - 1) / alignment * alignment
        }
        for blob in blobs {
            out.append(Data(count: (alignment - out.count % alignment) % alignment))
            out.append(blob)
        }
        return out
    }

    static func encode(_ tensor: (name: String, shape: [Int], type: StoredType, values: [Float])) -> Data {
        switch tensor.type {
        case .f32:
            return tensor.values.withUnsafeBytes { Data($0) }
        case .f16:
            return tensor.values.map { ck_float_to_half($0) }.withUnsafeBytes { Data($0) }
        case .q8_0:
            let cols = tensor.shape.last!
            let rows = tensor.values.count / cols
            var blocks = [ck_block_q8_0](repeating: ck_block_q8_0(), count: rows * cols / 32)
            _ = ck_quantize_q8_0(tensor.values, Int32(rows), Int32(cols), &blocks)
            return blocks.withUnsafeBytes { Data($0) }
        case .q4_0:
            return Data(q4_0(tensor.values).bytes)
        case .bf16:
            return tensor.values.map { bf16($0) }.withUnsafeBytes { Data($0) }
        }
    }

    /// ggml's quantize_row_q4_0_ref (LoRACore.docc/BlockFormats.md): per 32 values, d = (the value of largest
    /// magnitude) / -8, q = min(15, trunc(x/d + 8.5)); low nibbles hold values 0–15, high
    /// nibbles 16–31. Returns the bytes and the values they decode to.
    static func q4_0(_ values: [Float]) -> (bytes: [UInt8], decoded: [Float]) {
        var bytes: [UInt8] = []
        var decoded: [Float] = []
        for start in stride(from: 0, to: values.count, by: 32) {
            let x = values[start..<start + 32]
            let max = x.max { abs($0) < abs($1) }!
            let d = max / -8
            let id = d != 0 ? 1 / d : 0
            let half = ck_float_to_half(d)
            bytes += [UInt8(half & 0xFF), UInt8(half >> 8)]
            let q = x.map { UInt8(Swift.min(15, Int8($0 * id + 8.5))) }
            bytes += (0..<16).map { q[$0] | q[$0 + 16] << 4 }
            decoded += q.map { ck_half_to_float(half) * (Float($0) - 8) }
        }
        return (bytes, decoded)
    }

    /// f32 → bfloat16 bits, rounding to nearest even (ggml's ggml_compute_fp32_to_bf16).
    static func bf16(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        return UInt16((bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
    }

    /// The values a tensor of this writer decodes to.
    static func decoded(_ values: [Float], as type: StoredType) -> [Float] {
        switch type {
        case .f32: values
        case .f16: values.map { ck_half_to_float(ck_float_to_half($0)) }
        case .bf16: values.map { Float(bitPattern: UInt32(bf16($0)) << 16) }
        case .q4_0: q4_0(values).decoded
        case .q8_0: values // checked within half a step by the caller
        }
    }
}

/// A tiny random Llama in GGUF form with a byte-level BPE vocabulary (the 256 byte symbols
/// plus a few merges), for loader and fuzz tests.
enum TinyLlamaGGUF {
    static let dim = 64, hidden = 96, layers = 2, heads = 4, kvHeads = 2

    static func writer(types: [SpecGGUFWriter.StoredType] = [.f32, .f16, .q8_0], tied: Bool = true) -> SpecGGUFWriter {
        var w = SpecGGUFWriter()
        // GPT-2's byte alphabet (LoRACore.docc/FileFormats.md): printable Latin-1 as is, the rest from U+0100
        var next: UInt32 = 0x100
        let alphabet = (0..<256).map { byte -> String in
            if (0x21...0x7E).contains(byte) || (0xA1...0xAC).contains(byte) || (0xAE...0xFF).contains(byte) {
                return String(Unicode.Scalar(UInt32(byte))!)
            }
            defer { next += 1 }
            return String(Unicode.Scalar(next)!)
        }
        let merges = ["Ġ t", "h e", "Ġt he", "i n", "Ġ a"]
        let tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] + alphabet + merges.map { $0.replacingOccurrences(of: " ", with: "") }
        w.set("general.architecture", .string("llama"))
        w.set("general.name", .string("tiny"))
        w.set("llama.block_count", .u32(UInt32(layers)))
        w.set("llama.context_length", .u32(128))
        w.set("llama.embedding_length", .u32(UInt32(dim)))
        w.set("llama.feed_forward_length", .u32(UInt32(hidden)))
        w.set("llama.attention.head_count", .u32(UInt32(heads)))
        w.set("llama.attention.head_count_kv", .u64(UInt64(kvHeads)))
        w.set("llama.rope.freq_base", .f32(10_000))
        w.set("llama.attention.layer_norm_rms_epsilon", .f64(1e-5))
        w.set("llama.vocab_size", .i32(Int32(tokens.count)))
        w.set("tokenizer.ggml.model", .string("gpt2"))
        w.set("tokenizer.ggml.pre", .string("smollm"))
        w.set("tokenizer.ggml.tokens", .array(elementType: 8, tokens.map { .string($0) }))
        w.set("tokenizer.ggml.token_type", .array(elementType: 5, tokens.indices.map { .i32($0 < 3 ? 3 : 1) }))
        w.set("tokenizer.ggml.merges", .array(elementType: 8, merges.map { .string($0) }))
        w.set("tokenizer.ggml.bos_token_id", .u32(1))
        w.set("tokenizer.ggml.eos_token_id", .u32(2))
        w.set("tokenizer.ggml.add_bos_token", .bool(false))
        w.set("tokenizer.chat_template", .string("{% for m in messages %}<|im_start|>{{ m['role'] }}{% endfor %}"))
        w.set(
            "test.values",
            .array(
                elementType: 9,
                [
                    .array(elementType: 0, [.u8(1), .u8(2)]),
                    .array(elementType: 3, [.i16(-3)]),
                ]))
        w.set("test.scalars", .array(elementType: 12, [.f64(0.5)]))
        w.set("test.i8", .i8(-8))
        w.set("test.u16", .u16(16))
        w.set("test.i64", .i64(-64))
        var seed: UInt64 = 1
        func values(_ n: Int, scale: Float = 0.2) -> [Float] {
            seed += 1
            return Tensor.uniform([n], in: -scale...scale, seed: seed).scalars
        }
        var typeIndex = 0
        func matrix(_ name: String, _ rows: Int, _ cols: Int) {
            w.add(name, shape: [rows, cols], type: types[typeIndex % types.count], values: values(rows * cols))
            typeIndex += 1
        }
        let hd = dim / heads
        matrix("token_embd.weight", tokens.count, dim)
        for i in 0..<layers {
            w.add("blk.\(i).attn_norm.weight", shape: [dim], values: values(dim, scale: 1).map { 1 + $0 / 4 })
            matrix("blk.\(i).attn_q.weight", heads * hd, dim)
            matrix("blk.\(i).attn_k.weight", kvHeads * hd, dim)
            matrix("blk.\(i).attn_v.weight", kvHeads * hd, dim)
            matrix("blk.\(i).attn_output.weight", dim, heads * hd)
            w.add("blk.\(i).ffn_norm.weight", shape: [dim], values: values(dim, scale: 1).map { 1 + $0 / 4 })
            matrix("blk.\(i).ffn_gate.weight", hidden, dim)
            matrix("blk.\(i).ffn_up.weight", hidden, dim)
            matrix("blk.\(i).ffn_down.weight", dim, hidden)
        }
        w.add("output_norm.weight", shape: [dim], values: values(dim, scale: 1).map { 1 + $0 / 4 })
        if !tied { matrix("output.weight", tokens.count, dim) }
        return w
    }

    static func write(_ writer: SpecGGUFWriter = writer(), name: String = "tiny.gguf") throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("swift-lora-tests-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let url = dir.appendingPathComponent(name)
        try writer.data().write(to: url)
        return url.path
    }
}
