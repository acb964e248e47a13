import LoRACore
import Testing

@Suite struct TensorTests {
    @Test func viewsShareStorageAndCopiesDoNot() throws {
        let t = try Tensor(shape: [3, 2], values: [1, 2, 3, 4, 5, 6])
        var middle = t.rows(1..<2)
        #expect(middle.shape == [1, 2] && middle.scalars == [3, 4])
        middle.withUnsafeMutableBufferPointer { $0[0] = 30 }
        #expect(t.scalars == [1, 2, 30, 4, 5, 6])
        var copy = t.copy()
        copy.withUnsafeMutableBufferPointer { $0[0] = -1 }
        #expect(t.scalars[0] == 1)
        #expect(t.reshaped([2, 3]).rows(1..<2).scalars == [4, 5, 6])
        #expect(t.rowCount == 3 && t.rowLength == 2)
    }

    @Test func wrongValueCountIsATypedError() {
        #expect(throws: LoRAError.valueCountMismatch(shape: [2, 2], count: 3)) { try Tensor(shape: [2, 2], values: [1, 2, 3]) }
    }

    /// A tensor with a zero dimension holds nothing, and every operation that meets one
    /// (views, copies, reshapes, products with no rows or no outputs) gives the empty result
    /// of the right shape instead of trapping.
    @Test func emptyTensorsWork() throws {
        let empty = Tensor(zeros: [0, 5])
        #expect(empty.count == 0 && empty.scalars.isEmpty && empty.rowCount == 0 && empty.rowLength == 5)
        #expect(empty.copy().shape == [0, 5] && empty.reshaped([5, 0]).shape == [5, 0] && empty.transposed().shape == [5, 0])
        let rows = try Tensor(shape: [2, 5], values: (0..<10).map(Float.init)).rows(1..<1)
        #expect(rows.shape == [0, 5] && rows.scalars.isEmpty)
        #expect(Tensor(concatenatingColumns: [Tensor(zeros: [0, 2]), Tensor(zeros: [0, 3])]).shape == [0, 5])
        let w = try Tensor(shape: [3, 5], values: (0..<15).map(Float.init))
        #expect(Kernels.matmul(empty, w, transposeB: true).shape == [0, 3])
        #expect(Kernels.matmul(empty, QuantizedWeight(quantizing: w)).shape == [0, 3])
        #expect(Kernels.matmul(Tensor(zeros: [2, 0]), Tensor(zeros: [0, 4])).scalars == Array(repeating: 0, count: 8))
    }
}
