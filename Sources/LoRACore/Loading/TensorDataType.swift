import CKernels

/// How a checkpoint stores a tensor's values: the element types of safetensors and the
/// GGUF block types this library reads (ggml's ids, as GGUF stores them). The Q5 types are
/// read but not computed with: every precision converts them (to Q8_0, or f32).
public enum TensorDataType: String, Sendable, CaseIterable {
    case f32 = "F32"
    case f16 = "F16"
    case bf16 = "BF16"
    case q8_0 = "Q8_0"
    case q4_0 = "Q4_0"
    case q4_1 = "Q4_1"
    case q5_0 = "Q5_0"
    case q5_1 = "Q5_1"
    case q4_K = "Q4_K"
    case q5_K = "Q5_K"
    case q6_K = "Q6_K"

    init?(ggmlType: UInt32) {
        guard let type = Self.allCases.first(where: { $0.cValue.rawValue == ggmlType }) else { return nil }
        self = type
    }

    var cValue: ck_type {
        switch self {
        case .f32: CK_TYPE_F32
        case .f16: CK_TYPE_F16
        case .bf16: CK_TYPE_BF16
        case .q8_0: CK_TYPE_Q8_0
        case .q4_0: CK_TYPE_Q4_0
        case .q4_1: CK_TYPE_Q4_1
        case .q5_0: CK_TYPE_Q5_0
        case .q5_1: CK_TYPE_Q5_1
        case .q4_K: CK_TYPE_Q4_K
        case .q5_K: CK_TYPE_Q5_K
        case .q6_K: CK_TYPE_Q6_K
        }
    }

    /// Values per block (1 for plain element types).
    public var blockSize: Int { Int(ck_type_block_size(cValue)) }
    public var blockBytes: Int { Int(ck_type_block_bytes(cValue)) }

    /// Bytes of a row-major tensor, or nil when the innermost dimension does not split into
    /// whole blocks or the size overflows.
    func byteCount(shape: [Int]) -> Int? {
        guard let inner = shape.last, inner % blockSize == 0 else { return shape.isEmpty ? blockBytes : nil }
        var total = blockBytes
        for (i, dim) in shape.enumerated() {
            let factor = i == shape.count - 1 ? dim / blockSize : dim
            let (product, overflow) = total.multipliedReportingOverflow(by: factor)
            guard !overflow, dim >= 0 else { return nil }
            total = product
        }
        return total
    }
}

/// One tensor's bytes inside a mapped checkpoint, with what is needed to decode them.
struct TensorSlice {
    let name: String
    /// Row-major shape, outermost first ([out, in] for a weight matrix).
    let shape: [Int]
    let type: TensorDataType
    let bytes: UnsafeRawBufferPointer
    /// Where the bytes lie in the file, to release their pages once converted.
    let fileRange: Range<Int>

    var count: Int { shape.reduce(1, *) }

    /// Rows of a matrix as f32, into `values` (rows.count × shape.last).
    func dequantize(rows: Range<Int>, into values: UnsafeMutableBufferPointer<Float>) {
        let cols = shape.last ?? 1
        let rowBytes = cols / type.blockSize * type.blockBytes
        precondition(values.count == rows.count * cols, "dequantize: \(rows) rows of \(shape) into \(values.count) values")
        _ = ck_dequantize(type.cValue, bytes.baseAddress! + rows.lowerBound * rowBytes, values.baseAddress, Int64(values.count))
    }

    /// The values as f32 (exact: every stored type converts to f32 without rounding).
    func dequantized() -> Tensor {
        var result = Tensor(zeros: shape)
        result.withUnsafeMutableBufferPointer {
            _ = ck_dequantize(type.cValue, bytes.baseAddress, $0.baseAddress, Int64(count))
        }
        return result
    }
}
