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

    @Test func emptyTensorsWork() {
        let empty = Tensor(zeros: [0, 5])
        #expect(empty.count == 0 && empty.scalars.isEmpty)
    }
}
