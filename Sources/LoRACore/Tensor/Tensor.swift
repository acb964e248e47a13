import CKernels

/// A dense f32 tensor, row-major.
///
/// Tensors are views onto shared storage: copying a `Tensor` value or taking `rows(_:)`
/// does not copy elements, and writes through one view are seen by the others (as with
/// PyTorch tensors). `copy()` makes an independent tensor.
public struct Tensor: Sendable {
    let buffer: AlignedBuffer
    /// Offset of the first element, in elements.
    let offset: Int
    public let shape: [Int]

    public var count: Int { shape.reduce(1, *) }
    public var rank: Int { shape.count }
    /// Size of the last dimension: the length of a row.
    public var rowLength: Int { shape.last ?? 1 }
    /// Number of rows: every dimension but the last, flattened.
    public var rowCount: Int { shape.dropLast().reduce(1, *) }

    /// A tensor of zeros.
    public init(zeros shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "Tensor: negative dimension in \(shape)")
        let count = shape.reduce(1, *)
        buffer = AlignedBuffer(byteCount: count * MemoryLayout<Float>.stride)
        offset = 0
        self.shape = shape
    }

    /// A tensor whose elements a kernel is about to write, every one of them: skips the
    /// zero-fill (a memset of the whole output on the decoding path's critical thread).
    init(uninitialized shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "Tensor: negative dimension in \(shape)")
        buffer = AlignedBuffer(byteCount: shape.reduce(1, *) * MemoryLayout<Float>.stride, zeroed: false)
        offset = 0
        self.shape = shape
    }

    public init(shape: [Int], values: [Float]) throws(LoRAError) {
        guard shape.allSatisfy({ $0 >= 0 }), shape.reduce(1, *) == values.count else {
            throw .valueCountMismatch(shape: shape, count: values.count)
        }
        self.init(zeros: shape)
        withUnsafeMutableBufferPointer { _ = $0.initialize(from: values) }
    }

    init(buffer: AlignedBuffer, offset: Int, shape: [Int]) {
        self.buffer = buffer
        self.offset = offset
        self.shape = shape
    }

    /// The elements, copied out in row-major order.
    public var scalars: [Float] { withUnsafeBufferPointer { Array($0) } }

    /// Rows `range` along the first dimension, without copying.
    public func rows(_ range: Range<Int>) -> Tensor {
        precondition(
            rank >= 1 && range.lowerBound >= 0 && range.upperBound <= shape[0],
            "Tensor.rows: \(range) out of the first dimension of \(shape)")
        let rowSize = shape.dropFirst().reduce(1, *)
        return Tensor(
            buffer: buffer, offset: offset + range.lowerBound * rowSize,
            shape: [range.count] + shape.dropFirst())
    }

    /// The same elements under another shape with the same count, without copying.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        precondition(newShape.reduce(1, *) == count, "Tensor.reshaped: \(shape) cannot become \(newShape)")
        return Tensor(buffer: buffer, offset: offset, shape: newShape)
    }

    /// A matrix [rows, cols] as a new [cols, rows] matrix.
    public func transposed() -> Tensor {
        precondition(rank == 2, "Tensor.transposed: expected a matrix, got \(shape)")
        let rows = shape[0]
        let cols = shape[1]
        var result = Tensor(uninitialized: [cols, rows])
        withUnsafeBufferPointer { source in
            result.withUnsafeMutableBufferPointer { target in
                for i in 0..<rows {
                    for j in 0..<cols { target[j * rows + i] = source[i * cols + j] }
                }
            }
        }
        return result
    }

    /// How many elements are NaN or infinite: a weight file holding any is corrupt.
    public var nonFiniteCount: Int { withUnsafeBufferPointer { $0.count { !$0.isFinite } } }

    /// An independent copy of the elements.
    public func copy() -> Tensor {
        var result = Tensor(zeros: shape)
        withUnsafeBufferPointer { source in
            result.withUnsafeMutableBufferPointer { _ = $0.initialize(from: source) }
        }
        return result
    }

    /// Read access to the elements; the pointer is valid only inside `body`.
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        let base = buffer.pointer.assumingMemoryBound(to: Float.self) + offset
        return try body(UnsafeBufferPointer(start: base, count: count))
    }

    /// Write access to the elements (shared with every view of the same storage).
    public mutating func withUnsafeMutableBufferPointer<R>(
        _ body: (UnsafeMutableBufferPointer<Float>) throws -> R
    ) rethrows -> R {
        buffer.version &+= 1
        let base = buffer.pointer.assumingMemoryBound(to: Float.self) + offset
        return try body(UnsafeMutableBufferPointer(start: base, count: count))
    }
}

extension Tensor {
    /// The first elements of several tensors for one kernel call that takes them together (a
    /// fused product's parts), counted as written to when `writing`; valid only inside `body`.
    static func withBasePointers<R>(_ tensors: [Tensor], writing: Bool, _ body: ([UnsafeMutablePointer<Float>]) -> R) -> R {
        if writing { for tensor in tensors { tensor.buffer.version &+= 1 } }
        return withExtendedLifetime(tensors) {
            body(tensors.map { $0.buffer.pointer.assumingMemoryBound(to: Float.self) + $0.offset })
        }
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String { "Tensor\(shape)" }
}

extension Tensor {
    /// Columns `range` of a matrix [rows, cols] → [rows, range.count]: a view for a single
    /// row (decoding), a copy otherwise.
    public func columns(_ range: Range<Int>) -> Tensor {
        precondition(
            rank == 2 && range.lowerBound >= 0 && range.upperBound <= shape[1],
            "Tensor.columns: \(range) out of \(shape)")
        if shape[0] == 1 { return Tensor(buffer: buffer, offset: offset + range.lowerBound, shape: [1, range.count]) }
        var result = Tensor(uninitialized: [shape[0], range.count])
        guard result.count > 0 else { return result }
        withUnsafeBufferPointer { src in
            result.withUnsafeMutableBufferPointer { dst in
                ck_copy_matrix(
                    src.baseAddress! + range.lowerBound, Int32(shape[1]), Int32(shape[0]), Int32(range.count),
                    dst.baseAddress, Int32(range.count))
            }
        }
        return result
    }

    /// Matrices [rows, colsᵢ] side by side → [rows, Σ colsᵢ]: the inverse of `columns`.
    public init(concatenatingColumns parts: [Tensor]) {
        precondition(
            !parts.isEmpty && parts.allSatisfy { $0.rank == 2 && $0.shape[0] == parts[0].shape[0] },
            "Tensor(concatenatingColumns:): \(parts.map(\.shape)) are not matrices with the same rows")
        let rows = parts[0].shape[0]
        let width = parts.reduce(0) { $0 + $1.shape[1] }
        self.init(uninitialized: [rows, width])
        var start = 0
        for part in parts where part.count > 0 {
            let cols = part.shape[1]
            part.withUnsafeBufferPointer { src in
                withUnsafeMutableBufferPointer { dst in
                    ck_copy_matrix(src.baseAddress, Int32(cols), Int32(rows), Int32(cols), dst.baseAddress! + start, Int32(width))
                }
            }
            start += cols
        }
    }
}

extension Tensor {
    /// A matrix [rows, cols] whose rows, within each block of `headDim`, go from Hugging Face's
    /// rotate-half order into llama.cpp's adjacent-pair order (row 2i ← row i, row 2i+1 ←
    /// row i + headDim/2), or back with `inverse`: what llama.cpp's converter does to Q/K.
    public func permutingRowPairs(headDim: Int, inverse: Bool = false) -> Tensor {
        precondition(
            rank == 2 && headDim % 2 == 0 && shape[0] % headDim == 0,
            "Tensor.permutingRowPairs: \(shape) in heads of \(headDim)")
        let cols = shape[1]
        let half = headDim / 2
        var result = Tensor(uninitialized: shape)
        withUnsafeBufferPointer { src in
            result.withUnsafeMutableBufferPointer { dst in
                for head in 0..<shape[0] / headDim {
                    for i in 0..<half {
                        for (pair, rotateHalf) in [(2 * i, i), (2 * i + 1, i + half)] {
                            let (to, from) = inverse ? (rotateHalf, pair) : (pair, rotateHalf)
                            let t = (head * headDim + to) * cols
                            let f = (head * headDim + from) * cols
                            for c in 0..<cols { dst[t + c] = src[f + c] }
                        }
                    }
                }
            }
        }
        return result
    }
}
