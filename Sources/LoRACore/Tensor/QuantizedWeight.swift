import CKernels
import Foundation

/// A frozen weight matrix W [rows, cols] (out × in, as Hugging Face and GGUF store it)
/// held in blocks of one GGUF type (`type`: Q8_0, Q4_0, Q4_1, Q4_K or Q6_K), packed in the
/// panel layout the fused kernels read. A GGUF tensor of one of these types loads with its
/// bits as stored, so the model computes with exactly the file's weights.
public final class QuantizedWeight: @unchecked Sendable {
    public let type: TensorDataType
    public let rows: Int
    public let cols: Int
    let packed: AlignedBuffer
    /// Where this matrix's panels start in `packed` (a row range of a stacked matrix).
    private let byteOffset: Int
    private let lock = NSLock()
    private var transposed: AlignedBuffer?
    private var mode = BackwardDataMode.direct

    /// How backward passes run through this weight; leaving `.transposedCopy` frees the copy.
    public var backwardMode: BackwardDataMode {
        get {
            lock.lock()
            defer { lock.unlock() }
            return mode
        }
        set {
            precondition(
                newValue != .transposedCopy || type == .q8_0, "backwardMode: a transposed copy needs int8 weights, not \(type.rawValue)")
            lock.lock()
            defer { lock.unlock() }
            mode = newValue
            if newValue != .transposedCopy { transposed = nil }
        }
    }

    /// The block types the kernels run on.
    public static let types: [TensorDataType] = TensorDataType.allCases.filter { ck_packed_block_values($0.cValue) > 0 }

    /// Panel blocks per row (32 or 256 weights each): a tail is zero-padded.
    public var blocksPerRow: Int { Int(ck_packed_blocks_per_row(type.cValue, Int32(cols))) }
    /// Bytes the weights take in memory.
    public var byteCount: Int { Self.byteCount(type: type, rows: rows, cols: cols) }

    /// Bytes a [rows, cols] matrix of `type` takes in panels (what `init(type:rows:cols:)`
    /// allocates); its transposed int8 copy for the backward pass takes
    /// `byteCount(type: .q8_0, rows: cols, cols: rows)`.
    static func byteCount(type: TensorDataType, rows: Int, cols: Int) -> Int { ck_packed_bytes(type.cValue, Int32(rows), Int32(cols)) }

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
    init(type: TensorDataType = .q8_0, rows: Int, cols: Int) {
        precondition(Self.types.contains(type), "QuantizedWeight: no kernel runs on \(type.rawValue) blocks")
        self.type = type
        self.rows = rows
        self.cols = cols
        packed = AlignedBuffer(byteCount: Self.byteCount(type: type, rows: rows, cols: cols), transient: false)
        byteOffset = 0
    }

    private init(sharing packed: AlignedBuffer, byteOffset: Int, type: TensorDataType, rows: Int, cols: Int) {
        self.type = type
        self.rows = rows
        self.cols = cols
        self.packed = packed
        self.byteOffset = byteOffset
    }

    /// An empty (zero) matrix of several parts stacked row-wise (q, k, v → qkv; gate, up),
    /// and a view of each part's rows to fill: one product then serves all the parts, and
    /// the parts cost no memory of their own. Nil unless every part but the last fills whole
    /// panels of 16 rows (then each part's panels are a contiguous run of the stack's).
    public static func stack(type: TensorDataType = .q8_0, partRows: [Int], cols: Int) -> (
        stack: QuantizedWeight, parts: [QuantizedWeight]
    )? {
        guard canStack(partRows: partRows) else { return nil }
        let stack = QuantizedWeight(type: type, rows: partRows.reduce(0, +), cols: cols)
        var offset = 0
        let parts = partRows.map { rows in
            defer { offset += byteCount(type: type, rows: rows, cols: cols) }
            return QuantizedWeight(sharing: stack.packed, byteOffset: offset, type: type, rows: rows, cols: cols)
        }
        return (stack, parts)
    }

    /// Quantizes an f32 matrix [rows, cols] the way ggml's quantizer of `type` (Q8_0 or
    /// Q4_0) does (a NaN or an infinity becomes 0; loaders check `Tensor.nonFiniteCount` first).
    public convenience init(quantizing weight: Tensor, type: TensorDataType = .q8_0) {
        precondition(weight.rank == 2, "QuantizedWeight: expected a matrix, got \(weight.shape)")
        self.init(type: type, rows: weight.shape[0], cols: weight.shape[1])
        _ = weight.withUnsafeBufferPointer { values in
            fill { rows, out in
                _ = out.initialize(fromContentsOf: UnsafeBufferPointer(rebasing: values[rows.lowerBound * cols..<rows.upperBound * cols]))
            }
        }
    }

    /// Quantizes a matrix delivered a panel of rows at a time (see `fill(quantizingRows:)`).
    public convenience init(
        type: TensorDataType = .q8_0, rows: Int, cols: Int, quantizingRows fill: (Range<Int>, UnsafeMutableBufferPointer<Float>) -> Void
    ) {
        self.init(type: type, rows: rows, cols: cols)
        self.fill(quantizingRows: fill)
    }

    /// Overwrites the weights with values delivered a panel of rows at a time:
    /// `fill(rows, values)` writes rows.count × cols f32 values, quantized to `type` (Q8_0 or
    /// Q4_0). A large matrix in another storage type (Q4_1, bf16, …) thus never exists whole
    /// in f32, which keeps a loader's peak memory near the quantized size. Returns how many
    /// values were not finite (each stored as 0): a loader refuses such a tensor.
    @discardableResult
    func fill(quantizingRows fill: (Range<Int>, UnsafeMutableBufferPointer<Float>) -> Void) -> Int {
        precondition(type == .q8_0 || type == .q4_0, "QuantizedWeight: no quantizer writes \(type.rawValue) blocks")
        let panelRows = Int(CK_PANEL)
        let kb = Int(ck_q8_blocks_per_row(Int32(cols))) // blocks of 32 per row, both types
        let values = UnsafeMutableBufferPointer<Float>.allocate(capacity: panelRows * max(cols, 1))
        let blocks = UnsafeMutableRawPointer.allocate(byteCount: panelRows * max(kb, 1) * type.blockBytes, alignment: 64)
        let panelBytes = Self.byteCount(type: type, rows: panelRows, cols: cols)
        defer {
            values.deallocate()
            blocks.deallocate()
        }
        var nonFinite = 0
        for (panel, start) in stride(from: 0, to: rows, by: panelRows).enumerated() {
            let count = min(panelRows, rows - start)
            fill(start..<start + count, UnsafeMutableBufferPointer(rebasing: values[..<(count * cols)]))
            nonFinite += Int(
                type == .q8_0
                    ? ck_quantize_q8_0(values.baseAddress, Int32(count), Int32(cols), blocks.assumingMemoryBound(to: ck_block_q8_0.self))
                    : ck_quantize_q4_0(values.baseAddress, Int32(count), Int32(cols), blocks.assumingMemoryBound(to: ck_block_q4_0.self)))
            // a panel packed on its own is that panel of the whole matrix (tail rows zero-padded)
            ck_pack(type.cValue, blocks, Int32(count), Int32(cols), panels + panel * panelBytes)
        }
        return nonFinite
    }

    /// Bytes of `rows` rows of GGUF blocks of this type (ceil(cols / block size) blocks a row).
    var storedByteCount: Int { rows * ((cols + type.blockSize - 1) / type.blockSize) * type.blockBytes }

    /// Overwrites the weights with GGUF blocks of this type, as the file stores them.
    func fill(blocks bytes: UnsafeRawBufferPointer, name: String) throws(LoRAError) {
        guard bytes.count == storedByteCount else {
            throw .quantizedSizeMismatch(
                what: "\(name) [\(rows), \(cols)] \(type.rawValue)", expected: storedByteCount, actual: bytes.count)
        }
        if let base = bytes.baseAddress { ck_pack(type.cValue, base, Int32(rows), Int32(cols), panels) }
    }

    /// Blocks among GGUF `bytes` of `type` whose scale (or minimum) is a NaN or an infinity.
    static func nonFiniteScales(blocks bytes: UnsafeRawBufferPointer, type: TensorDataType) -> Int {
        Int(ck_blocks_nonfinite(type.cValue, bytes.baseAddress, Int64(bytes.count / max(type.blockBytes, 1))))
    }

    /// Wraps GGUF blocks of `type`: `rows` rows of ceil(cols / block size) blocks.
    public convenience init(blocks bytes: UnsafeRawBufferPointer, type: TensorDataType, rows: Int, cols: Int, name: String)
        throws(LoRAError)
    {
        guard rows >= 0, cols >= 0, Self.types.contains(type) else {
            throw .quantizedSizeMismatch(what: "\(name) [\(rows), \(cols)] \(type.rawValue)", expected: 0, actual: bytes.count)
        }
        self.init(type: type, rows: rows, cols: cols)
        try fill(blocks: bytes, name: name)
    }

    var panels: UnsafeMutableRawPointer { packed.pointer + byteOffset }

    /// The weights as GGUF Q8_0 blocks (rows × blocksPerRow × 34 bytes); int8 weights only.
    public func q8_0Blocks() -> [UInt8] {
        precondition(type == .q8_0, "q8_0Blocks: the weights are \(type.rawValue) blocks")
        var bytes = [UInt8](repeating: 0, count: storedByteCount)
        bytes.withUnsafeMutableBytes {
            ck_q8_unpack(q8Panels, Int32(rows), Int32(cols), $0.baseAddress?.assumingMemoryBound(to: ck_block_q8_0.self))
        }
        return bytes
    }

    private var q8Panels: UnsafeMutablePointer<ck_panel_block> { panels.assumingMemoryBound(to: ck_panel_block.self) }

    /// The exact f32 values the blocks stand for.
    public func dequantized() -> Tensor {
        var result = Tensor(zeros: [rows, cols])
        result.withUnsafeMutableBufferPointer {
            ck_packed_dequantize(type.cValue, panels, Int32(rows), Int32(cols), 0, Int32(rows), 0, Int32(cols), $0.baseAddress, Int32(cols))
        }
        return result
    }

    /// W^T requantized in blocks of 32 along W's rows, for the int8 backward-data product
    /// with a transposed copy (Q8_0 weights only). Built on first use: inference never pays
    /// for it, training pays once per weight.
    func transposedPanels() -> UnsafeMutablePointer<ck_panel_block> {
        precondition(type == .q8_0, "transposedPanels: the weights are \(type.rawValue) blocks")
        lock.lock()
        defer { lock.unlock() }
        if let transposed { return transposed.pointer.assumingMemoryBound(to: ck_panel_block.self) }
        let blocks = q8_0Blocks()
        let buffer = AlignedBuffer(byteCount: Self.byteCount(type: .q8_0, rows: cols, cols: rows), transient: false)
        let out = buffer.pointer.assumingMemoryBound(to: ck_panel_block.self)
        blocks.withUnsafeBytes {
            ck_q8_pack_transposed($0.baseAddress?.assumingMemoryBound(to: ck_block_q8_0.self), Int32(rows), Int32(cols), out)
        }
        transposed = buffer
        return out
    }
}
