import CKernels
import Foundation
import Testing

/// Dequantization of every GGUF storage type against hand-made blocks whose values are
/// known from the format's definition (Sources/LoRACore/LoRACore.docc/BlockFormats.md), not from the code under test.
@Suite struct QuantTests {
    func dequantize(_ type: ck_type, _ bytes: [UInt8], count: Int) -> [Float] {
        var out = [Float](repeating: .nan, count: count)
        #expect(ck_dequantize(type, bytes, &out, Int64(count)) == CK_OK)
        return out
    }

    func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8)] }

    @Test func halfConversionRoundTripsEveryHalf() {
        for bits in 0...0xFFFF {
            let h = UInt16(bits)
            let f = ck_half_to_float(h)
            if f.isNaN { continue }
            #expect(ck_float_to_half(f) == h, "half \(bits)")
            #expect(f == Float(Float16(bitPattern: h)), "half \(bits)")
        }
        #expect(ck_float_to_half(1.0) == 0x3C00)
        #expect(ck_float_to_half(65504) == 0x7BFF)
        #expect(ck_float_to_half(1e6) == 0x7C00) // overflow -> +inf
        #expect(ck_float_to_half(0.1) == 0x2E66) // nearest half to 0.1
        #expect(ck_float_to_half(6e-8) == 0x0001) // smallest subnormal
        #expect(ck_float_to_half(Float.nan) & 0x7C00 == 0x7C00)
    }

    @Test func f32F16BF16() {
        let f32: [Float] = [1.5, -2.25, 0, 3e-3]
        let f32Bytes = f32.withUnsafeBytes { Array($0) }
        #expect(dequantize(CK_TYPE_F32, f32Bytes, count: 4) == f32)
        let f16Bytes: [UInt8] = [0x00, 0x3C, 0x00, 0xC0, 0x55, 0x35, 0x01, 0x00]
        #expect(dequantize(CK_TYPE_F16, f16Bytes, count: 4) == [1, -2, Float(Float16(bitPattern: 0x3555)), 0x1p-24])
        // bf16 is the top half of an f32
        let bf16Bytes: [UInt8] = [0xC0, 0x3F, 0x10, 0xC0, 0x00, 0x00, 0x80, 0x7F]
        #expect(dequantize(CK_TYPE_BF16, bf16Bytes, count: 4) == [1.5, -2.25, 0, .infinity])
    }

    @Test func q8_0() {
        let qs = (0..<32).map { Int8($0 - 3) }
        let bytes = le16(0x3800) + qs.map { UInt8(bitPattern: $0) } // d = 0.5
        #expect(dequantize(CK_TYPE_Q8_0, bytes, count: 32) == qs.map { 0.5 * Float($0) })
    }

    @Test func q4_0() {
        // byte j holds element j in its low nibble and element j+16 in its high nibble
        let packed: [UInt8] = (0..<16).map { (j: Int) -> UInt8 in UInt8(j | ((15 - j) << 4)) }
        let bytes = le16(0x4000) + packed // d = 2
        let low: [Float] = (0..<16).map { (j: Int) -> Float in 2 * Float(j - 8) }
        let high: [Float] = (0..<16).map { (j: Int) -> Float in 2 * Float(7 - j) }
        let expected = low + high
        #expect(dequantize(CK_TYPE_Q4_0, bytes, count: 32) == expected)
    }

    @Test func q4_1() {
        let packed: [UInt8] = (0..<16).map { (j: Int) -> UInt8 in UInt8((j * 3) % 16 | ((j * 5 + 1) % 16) << 4) }
        let bytes = le16(0x3800) + le16(0xBC00) + packed // d = 0.5, m = -1
        let low: [Float] = (0..<16).map { (j: Int) -> Float in 0.5 * Float((j * 3) % 16) - 1 }
        let high: [Float] = (0..<16).map { (j: Int) -> Float in 0.5 * Float((j * 5 + 1) % 16) - 1 }
        #expect(dequantize(CK_TYPE_Q4_1, bytes, count: 32) == low + high)
    }

    @Test func q4_k() {
        // Eight sub-blocks of 32 with 6-bit scales/mins, including values that need the
        // two high bits stored apart (>= 16 for sub-blocks 4..7).
        let sc: [UInt8] = [1, 2, 3, 63, 20, 33, 47, 63]
        let mn: [UInt8] = [0, 5, 10, 15, 17, 40, 50, 63]
        var scales = [UInt8](repeating: 0, count: 12)
        for j in 0..<4 {
            scales[j] = (sc[j] & 63) | ((sc[j + 4] >> 4) << 6)
            scales[j + 4] = (mn[j] & 63) | ((mn[j + 4] >> 4) << 6)
            scales[j + 8] = (sc[j + 4] & 0xF) | ((mn[j + 4] & 0xF) << 4)
        }
        let nibbles = (0..<256).map { UInt8(($0 * 7 + 3) % 16) } // element e's 4-bit value
        var qs = [UInt8](repeating: 0, count: 128)
        for e in 0..<256 {
            let chunk = e / 64
            let within = e % 64
            let byte = chunk * 32 + within % 32
            qs[byte] |= within < 32 ? nibbles[e] : nibbles[e] << 4
        }
        let d: Float = 0.25
        let dmin: Float = 0.125
        let bytes = le16(ck_float_to_half(d)) + le16(ck_float_to_half(dmin)) + scales + qs
        let expected = (0..<256).map { e -> Float in
            let sub = e / 32
            return d * Float(sc[sub]) * Float(nibbles[e]) - dmin * Float(mn[sub])
        }
        #expect(dequantize(CK_TYPE_Q4_K, bytes, count: 256) == expected)
    }

    @Test func q6_k() {
        let values = (0..<256).map { UInt8(($0 * 11 + 5) % 64) } // 6-bit, stored minus 32
        let scales = (0..<16).map { Int8($0 * 9 - 70) }
        var ql = [UInt8](repeating: 0, count: 128)
        var qh = [UInt8](repeating: 0, count: 64)
        for e in 0..<256 {
            let half = e / 128
            let group = (e % 128) / 32
            let l = e % 32
            let low = values[e] & 0xF
            let high = values[e] >> 4
            let lowIndex = 64 * half + l + (group & 1) * 32
            ql[lowIndex] |= group < 2 ? low : low << 4
            qh[32 * half + l] |= high << (2 * group)
        }
        let d: Float = 0.5
        let bytes = ql + qh + scales.map { UInt8(bitPattern: $0) } + le16(ck_float_to_half(d))
        let expected = (0..<256).map { e in d * Float(scales[e / 16]) * Float(Int(values[e]) - 32) }
        #expect(dequantize(CK_TYPE_Q6_K, bytes, count: 256) == expected)
    }

    @Test func unknownTypeAndBadCountAreErrors() {
        var out = [Float](repeating: 0, count: 32)
        #expect(ck_dequantize(ck_type(rawValue: 16), [UInt8](repeating: 0, count: 176), &out, 32) == CK_ERR_UNSUPPORTED)
        #expect(ck_dequantize(CK_TYPE_Q8_0, [UInt8](repeating: 0, count: 34), &out, 31) == CK_ERR_SHAPE)
        #expect(ck_type_block_bytes(CK_TYPE_Q4_K) == 144 && ck_type_block_size(CK_TYPE_Q6_K) == 256)
    }

    @Test func q8_0QuantizerFollowsGGML() {
        // amax 127 -> d = 1: values round half away from zero, as ggml's roundf does.
        var x: [Float] = [127, 2.5, -2.5, 0.49, -126.6] + [Float](repeating: 0, count: 27)
        var blocks = [ck_block_q8_0](repeating: ck_block_q8_0(), count: 1)
        _ = ck_quantize_q8_0(x, 1, 32, &blocks)
        #expect(blocks[0].d == 0x3C00)
        let qs = withUnsafeBytes(of: blocks[0].qs) { $0.map { Int8(bitPattern: $0) } }
        #expect(Array(qs[0..<5]) == [127, 3, -3, 0, -127])
        // A tail (k = 37) is zero-padded and round-trips within half a step.
        var rng = SeededRandom(seed: 9)
        x = rng.floats(2 * 37)
        var tail = [ck_block_q8_0](repeating: ck_block_q8_0(), count: 4)
        _ = ck_quantize_q8_0(x, 2, 37, &tail)
        var back = [Float](repeating: 0, count: 2 * 37)
        ck_dequantize_q8_0(tail, 2, 37, &back)
        for i in 0..<(2 * 37) {
            let block = tail[(i / 37) * 2 + (i % 37) / 32]
            let step = ck_half_to_float(block.d)
            #expect(abs(back[i] - x[i]) <= step / 2 * 1.01 + 1e-7)
        }
        let padding = withUnsafeBytes(of: tail[1].qs) { Array($0[5...]) }
        #expect(padding.allSatisfy { $0 == 0 })
        #expect(ck_quantize_q8_0(x, 2, 37, &tail) == 0)
        // NaN and infinities have no int8 value: counted, stored as 0, the rest quantized as usual
        let broken: [Float] = [.nan, 127, -.infinity, 2.5] + [Float](repeating: 0, count: 28)
        #expect(ck_quantize_q8_0(broken, 1, 32, &blocks) == 2)
        let kept = withUnsafeBytes(of: blocks[0].qs) { $0.map { Int8(bitPattern: $0) } }
        #expect(blocks[0].d == 0x3C00 && Array(kept[0..<4]) == [0, 127, 0, 3])
    }

    @Test func packUnpackRoundTripsAndDequantizesExactly() {
        var rng = SeededRandom(seed: 21)
        for (rows, cols) in [(1, 1), (5, 37), (16, 32), (37, 70), (33, 129)] {
            let w = PackedWeights(rows: rows, cols: cols, rng: &rng)
            var unpacked = [ck_block_q8_0](repeating: ck_block_q8_0(), count: w.blocks.count)
            ck_q8_unpack(w.packed, Int32(rows), Int32(cols), &unpacked)
            let original = w.blocks.withUnsafeBytes { Array($0) }
            #expect(unpacked.withUnsafeBytes { Array($0) } == original, "\(rows)x\(cols)")
            var deq = [Float](repeating: .nan, count: rows * cols)
            ck_packed_dequantize(CK_TYPE_Q8_0, w.packed, Int32(rows), Int32(cols), 0, Int32(rows), 0, Int32(cols), &deq, Int32(cols))
            #expect(deq == w.dequantized, "\(rows)x\(cols)")
        }
    }
}
