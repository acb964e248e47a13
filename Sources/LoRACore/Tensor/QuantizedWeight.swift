import CKernels
import Foundation

/// A frozen weight matrix W [rows, cols] (out × in, as Hugging Face and GGUF store it)
/// held as int8 Q8_0 blocks (32 weights, one scale), packed in the panel layout the fused
/// kernels read. GGUF Q8_0 data loads without requantizing and exports bit-identically.
public final class QuantizedWeight: @unchecked Sendable {
    public let rows: Int
    public let cols: Int
    let packed: AlignedBuffer
    private let lock = NSLock()
    private var transposed: AlignedBuffer?

    static var blockBytes: Int { MemoryLayout<ck_block_q8_0>.size }
    /// Q8_0 blocks per row: a tail shorter than 32 is zero-padded.
    public var blocksPerRow: Int { Int(ck_q8_blocks_per_row(Int32(cols))) }
    /// Bytes the int8 weights take in memory.
    public var byteCount: Int { packed.byteCount }

    private init(rows: Int, cols: Int, q8_0: UnsafeRawPointer?) {
        self.rows = rows
        self.cols = cols
        packed = AlignedBuffer(byteCount: ck_q8_packed_bytes(Int32(rows), Int32(cols)))
        ck_q8_pack(q8_0?.assumingMemoryBound(to: ck_block_q8_0.self), Int32(rows), Int32(cols), panels)
    }

    /// Quantizes an f32 matrix [rows, cols] the way ggml's Q8_0 quantizer does.
    public convenience init(quantizing weight: Tensor) {
        precondition(weight.rank == 2, "QuantizedWeight: expected a matrix, got \(weight.shape)")
        let rows = weight.shape[0], cols = weight.shape[1]
        let blocks = UnsafeMutablePointer<ck_block_q8_0>.allocate(capacity: max(1, rows * Int(ck_q8_blocks_per_row(Int32(cols)))))
        defer { blocks.deallocate() }
        weight.withUnsafeBufferPointer { ck_quantize_q8_0($0.baseAddress, Int32(rows), Int32(cols), blocks) }
        self.init(rows: rows, cols: cols, q8_0: blocks)
    }

    /// Wraps Q8_0 blocks as GGUF stores them: `rows` rows of ceil(cols/32) 34-byte blocks.
    public convenience init(q8_0Blocks bytes: UnsafeRawBufferPointer, rows: Int, cols: Int, name: String) throws(LoRAError) {
        let expected = rows * Int(ck_q8_blocks_per_row(Int32(cols))) * Self.blockBytes
        guard rows >= 0, cols >= 0, bytes.count == expected else {
            throw .quantizedSizeMismatch(what: "\(name) [\(rows), \(cols)]", expected: expected, actual: bytes.count)
        }
        self.init(rows: rows, cols: cols, q8_0: bytes.baseAddress)
    }

    var panels: UnsafeMutablePointer<ck_panel_block> {
        packed.pointer.assumingMemoryBound(to: ck_panel_block.self)
    }

    /// The weights as GGUF Q8_0 blocks (rows × blocksPerRow × 34 bytes).
    public func q8_0Blocks() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: rows * blocksPerRow * Self.blockBytes)
        bytes.withUnsafeMutableBytes {
            ck_q8_unpack(panels, Int32(rows), Int32(cols), $0.baseAddress?.assumingMemoryBound(to: ck_block_q8_0.self))
        }
        return bytes
    }

    /// The exact f32 values the int8 blocks stand for.
    public func dequantized() -> Tensor {
        var result = Tensor(zeros: [rows, cols])
        result.withUnsafeMutableBufferPointer {
            ck_q8_packed_dequantize(panels, Int32(rows), Int32(cols), 0, Int32(rows), 0, Int32(cols), $0.baseAddress, Int32(cols))
        }
        return result
    }

    /// W^T requantized in blocks of 32 along W's rows, for the int8 backward-data product.
    /// Built on first use: inference never pays for it, training pays once per weight.
    func transposedPanels() -> UnsafeMutablePointer<ck_panel_block> {
        lock.lock()
        defer { lock.unlock() }
        if let transposed { return transposed.pointer.assumingMemoryBound(to: ck_panel_block.self) }
        let blocks = q8_0Blocks()
        let buffer = AlignedBuffer(byteCount: ck_q8_packed_bytes(Int32(cols), Int32(rows)))
        let out = buffer.pointer.assumingMemoryBound(to: ck_panel_block.self)
        blocks.withUnsafeBytes {
            ck_q8_pack_transposed($0.baseAddress?.assumingMemoryBound(to: ck_block_q8_0.self), Int32(rows), Int32(cols), out)
        }
        transposed = buffer
        return out
    }
}
