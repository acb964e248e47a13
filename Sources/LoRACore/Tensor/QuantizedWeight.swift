import CKernels
import Foundation

/// A frozen weight matrix W [rows, cols] (out × in, as Hugging Face and GGUF store it)
/// held as int8 Q8_0 blocks (32 weights, one scale), packed in the panel layout the fused
/// kernels read. GGUF Q8_0 data loads without requantizing and exports bit-identically.
public final class QuantizedWeight: @unchecked Sendable {
    public let rows: Int
    public let cols: Int
    let packed: AlignedBuffer
    /// Where this matrix's panels start in `packed` (a row range of a stacked matrix).
    private let panelOffset: Int
    private let lock = NSLock()
    private var transposed: AlignedBuffer?

    static var blockBytes: Int { MemoryLayout<ck_block_q8_0>.size }
    /// Q8_0 blocks per row: a tail shorter than 32 is zero-padded.
    public var blocksPerRow: Int { Int(ck_q8_blocks_per_row(Int32(cols))) }
    /// Bytes the int8 weights take in memory.
    public var byteCount: Int { Self.byteCount(rows: rows, cols: cols) }

    /// Bytes a [rows, cols] matrix takes in panels (what `init(rows:cols:)` allocates); its
    /// transposed copy for the backward pass takes `byteCount(rows: cols, cols: rows)`.
    static func byteCount(rows: Int, cols: Int) -> Int { ck_q8_packed_bytes(Int32(rows), Int32(cols)) }

    /// Bytes of the transposed copy, 0 until a backward pass has built it.
    var transposedByteCount: Int {
        lock.lock()
        defer { lock.unlock() }
        return transposed?.byteCount ?? 0
    }

    /// Whether parts of these row counts can share one stack: every part but the last must
    /// fill whole panels, so each part's panels are a contiguous run of the stack's.
    static func canStack(partRows: [Int]) -> Bool {
        !partRows.isEmpty && partRows.allSatisfy { $0 >= 0 } && partRows.dropLast().allSatisfy { $0 % Int(CK_PANEL) == 0 }
    }

    /// Zeroed panels, filled by the convenience initializers.
    init(rows: Int, cols: Int) {
        self.rows = rows
        self.cols = cols
        packed = AlignedBuffer(byteCount: Self.byteCount(rows: rows, cols: cols))
        panelOffset = 0
    }

    private init(sharing packed: AlignedBuffer, panelOffset: Int, rows: Int, cols: Int) {
        self.rows = rows
        self.cols = cols
        self.packed = packed
        self.panelOffset = panelOffset
    }

    /// An empty (zero) matrix of several parts stacked row-wise (q, k, v → qkv; gate, up),
    /// and a view of each part's rows to fill: one product then serves all the parts, and
    /// the parts cost no memory of their own. Nil unless every part but the last fills whole
    /// panels of 16 rows (then each part's panels are a contiguous run of the stack's).
    public static func stack(partRows: [Int], cols: Int) -> (stack: QuantizedWeight, parts: [QuantizedWeight])? {
        guard canStack(partRows: partRows) else { return nil }
        let stack = QuantizedWeight(rows: partRows.reduce(0, +), cols: cols)
        var offset = 0
        let parts = partRows.map { rows in
            defer { offset += Int(ck_q8_panels(Int32(rows))) * stack.blocksPerRow }
            return QuantizedWeight(sharing: stack.packed, panelOffset: offset, rows: rows, cols: cols)
        }
        return (stack, parts)
    }

    /// Quantizes an f32 matrix [rows, cols] the way ggml's Q8_0 quantizer does (a NaN or an
    /// infinity becomes 0; loaders check `Tensor.nonFiniteCount` first).
    public convenience init(quantizing weight: Tensor) {
        precondition(weight.rank == 2, "QuantizedWeight: expected a matrix, got \(weight.shape)")
        let rows = weight.shape[0]
        let cols = weight.shape[1]
        let blocks = UnsafeMutablePointer<ck_block_q8_0>.allocate(capacity: max(1, rows * Int(ck_q8_blocks_per_row(Int32(cols)))))
        defer { blocks.deallocate() }
        _ = weight.withUnsafeBufferPointer { ck_quantize_q8_0($0.baseAddress, Int32(rows), Int32(cols), blocks) }
        self.init(rows: rows, cols: cols)
        ck_q8_pack(blocks, Int32(rows), Int32(cols), panels)
    }

    /// Quantizes a matrix delivered a panel of rows at a time (see `fill(quantizingRows:)`).
    public convenience init(rows: Int, cols: Int, quantizingRows fill: (Range<Int>, UnsafeMutableBufferPointer<Float>) -> Void) {
        self.init(rows: rows, cols: cols)
        self.fill(quantizingRows: fill)
    }

    /// Overwrites the weights with values delivered a panel of rows at a time:
    /// `fill(rows, values)` writes rows.count × cols f32 values. A large matrix in another
    /// storage type (Q4_1, bf16, …) thus never exists whole in f32, which keeps a loader's
    /// peak memory near the int8 size. Returns how many values were not finite (each stored
    /// as 0): a loader refuses such a tensor.
    @discardableResult
    func fill(quantizingRows fill: (Range<Int>, UnsafeMutableBufferPointer<Float>) -> Void) -> Int {
        let panelRows = Int(CK_PANEL)
        let kb = blocksPerRow
        let values = UnsafeMutableBufferPointer<Float>.allocate(capacity: panelRows * max(cols, 1))
        let blocks = UnsafeMutablePointer<ck_block_q8_0>.allocate(capacity: panelRows * max(kb, 1))
        defer {
            values.deallocate()
            blocks.deallocate()
        }
        var nonFinite = 0
        for (panel, start) in stride(from: 0, to: rows, by: panelRows).enumerated() {
            let count = min(panelRows, rows - start)
            fill(start..<start + count, UnsafeMutableBufferPointer(rebasing: values[..<(count * cols)]))
            nonFinite += Int(ck_quantize_q8_0(values.baseAddress, Int32(count), Int32(cols), blocks))
            // a panel packed on its own is that panel of the whole matrix (tail rows zero-padded)
            ck_q8_pack(blocks, Int32(count), Int32(cols), panels + panel * kb)
        }
        return nonFinite
    }

    /// Overwrites the weights with Q8_0 blocks as GGUF stores them (rows × blocksPerRow × 34 bytes).
    func fill(q8_0Blocks bytes: UnsafeRawBufferPointer, name: String) throws(LoRAError) {
        let expected = rows * blocksPerRow * Self.blockBytes
        guard bytes.count == expected else {
            throw .quantizedSizeMismatch(what: "\(name) [\(rows), \(cols)]", expected: expected, actual: bytes.count)
        }
        if let base = bytes.baseAddress { ck_q8_pack(base.assumingMemoryBound(to: ck_block_q8_0.self), Int32(rows), Int32(cols), panels) }
    }

    /// Blocks among GGUF Q8_0 `bytes` whose scale is a NaN or an infinity (an IEEE half with
    /// every exponent bit set).
    static func nonFiniteScales(q8_0Blocks bytes: UnsafeRawBufferPointer) -> Int {
        stride(from: 0, to: bytes.count - 1, by: blockBytes).count { offset in
            bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self).littleEndian & 0x7C00 == 0x7C00
        }
    }

    /// Wraps Q8_0 blocks as GGUF stores them: `rows` rows of ceil(cols/32) 34-byte blocks.
    public convenience init(q8_0Blocks bytes: UnsafeRawBufferPointer, rows: Int, cols: Int, name: String) throws(LoRAError) {
        guard rows >= 0, cols >= 0 else {
            throw .quantizedSizeMismatch(what: "\(name) [\(rows), \(cols)]", expected: 0, actual: bytes.count)
        }
        self.init(rows: rows, cols: cols)
        try fill(q8_0Blocks: bytes, name: name)
    }

    var panels: UnsafeMutablePointer<ck_panel_block> {
        packed.pointer.assumingMemoryBound(to: ck_panel_block.self) + panelOffset
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
        let buffer = AlignedBuffer(byteCount: Self.byteCount(rows: cols, cols: rows))
        let out = buffer.pointer.assumingMemoryBound(to: ck_panel_block.self)
        blocks.withUnsafeBytes {
            ck_q8_pack_transposed($0.baseAddress?.assumingMemoryBound(to: ck_block_q8_0.self), Int32(rows), Int32(cols), out)
        }
        transposed = buffer
        return out
    }
}
