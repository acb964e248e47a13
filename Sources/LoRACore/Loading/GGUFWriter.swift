import CKernels
import Foundation

/// Writes GGUF v3 files as llama.cpp reads them (<doc:FileFormats>): metadata entries, then the
/// tensor directory, then each tensor's data aligned to 32 bytes. Tensors are produced and
/// written one at a time, so a merged 70B model never sits in memory whole; the file is
/// written under a temporary name and renamed when complete.
public struct GGUFWriter {
    /// Metadata values this library writes itself (anything else is copied from a source file).
    public enum Value: Sendable {
        case string(String)
        case uint32(UInt32)
        case float32(Float)
        case bool(Bool)
        case strings([String])
        case float32s([Float])
        case int32s([Int32])
    }

    /// How a tensor is stored.
    public enum TensorType: String, Sendable, CaseIterable {
        case f32, f16, q8_0, q4_0

        var stored: TensorDataType {
            switch self {
            case .f32: .f32
            case .f16: .f16
            case .q8_0: .q8_0
            case .q4_0: .q4_0
            }
        }

        var ggmlType: UInt32 { stored.cValue.rawValue }

        func byteCount(shape: [Int]) -> Int { stored.byteCount(shape: shape) ?? 0 }
    }

    private enum Payload {
        case values(TensorType, () throws(LoRAError) -> Tensor)
        case blocks(() -> Data)
        case copied(GGUFFile, GGUFTensorInfo)
    }

    private var entries: [(key: String, bytes: Data)] = []
    private var tensors: [(name: String, shape: [Int], typeID: UInt32, byteCount: Int, payload: Payload)] = []
    static let alignment = 32

    public init() {}

    /// Sets `key` (replacing an entry of the same key).
    public mutating func set(_ key: String, _ value: Value) {
        var bytes = Self.string(key)
        switch value {
        case .string(let s): bytes += Self.u32(8) + Self.string(s)
        case .uint32(let v): bytes += Self.u32(4) + Self.u32(v)
        case .float32(let v): bytes += Self.u32(6) + Self.u32(v.bitPattern)
        case .bool(let v): bytes += Self.u32(7) + Data([v ? 1 : 0])
        // arrays: type 9, then the element type, the count and the elements
        case .strings(let a):
            bytes += Self.u32(9) + Self.u32(8) + Self.u64(UInt64(a.count)) + a.reduce(into: Data()) { $0 += Self.string($1) }
        case .float32s(let a):
            bytes += Self.u32(9) + Self.u32(6) + Self.u64(UInt64(a.count)) + a.reduce(into: Data()) { $0 += Self.u32($1.bitPattern) }
        case .int32s(let a):
            bytes +=
                Self.u32(9) + Self.u32(5) + Self.u64(UInt64(a.count)) + a.reduce(into: Data()) { $0 += Self.u32(UInt32(bitPattern: $1)) }
        }
        put(key, bytes)
    }

    /// Copies every metadata entry of `source` verbatim (exact types, tokenizer included),
    /// except `general.alignment` (this writer aligns to 32).
    public mutating func copyMetadata(of source: GGUFFile) {
        for (key, _) in source.metadata where key != "general.alignment" {
            put(key, Data(source.file.bytes[source.rawMetadata[key]!]))
        }
    }

    private mutating func put(_ key: String, _ bytes: Data) {
        if let index = entries.firstIndex(where: { $0.key == key }) { entries[index].bytes = bytes } else { entries.append((key, bytes)) }
    }

    /// A tensor of `shape` (outermost first, [out, in]) whose values `make` produces when the
    /// file is written. Q8_0 needs rows that are a multiple of 32 long.
    public mutating func add(_ name: String, shape: [Int], type: TensorType, _ make: @escaping () throws(LoRAError) -> Tensor) {
        precondition(
            (shape.last ?? 0) % type.stored.blockSize == 0, "GGUFWriter: \(type.stored.rawValue) rows of \(shape.last ?? 0) values")
        tensors.append((name, shape, type.ggmlType, type.byteCount(shape: shape), .values(type, make)))
    }

    /// A tensor of `shape` whose GGUF blocks of `type` (rows of whole blocks) `make` writes
    /// when the file is written.
    public mutating func add(_ name: String, shape: [Int], blocks type: TensorDataType, _ make: @escaping () -> Data) {
        guard let byteCount = type.byteCount(shape: shape) else {
            preconditionFailure("GGUFWriter: \(name) \(shape) does not split into \(type.rawValue) blocks")
        }
        tensors.append((name, shape, type.cValue.rawValue, byteCount, .blocks(make)))
    }

    /// A tensor copied byte for byte from `source` (its stored type kept).
    public mutating func copy(_ name: String, from source: GGUFFile) throws(LoRAError) {
        guard let info = source.tensor(named: name), let range = info.byteRange else {
            throw .missingTensor(file: source.path, tensor: name)
        }
        tensors.append((name, info.shape, info.typeID, range.count, .copied(source, info)))
    }

    /// Writes the file, reporting each tensor done.
    public func write(to path: String, progress: ((WorkProgress) -> Void)? = nil) throws(LoRAError) {
        var header = Data("GGUF".utf8) + Self.u32(3) + Self.u64(UInt64(tensors.count)) + Self.u64(UInt64(entries.count))
        for entry in entries { header += entry.bytes }
        var offset = 0
        for tensor in tensors {
            header += Self.string(tensor.name) + Self.u32(UInt32(tensor.shape.count))
            for dim in tensor.shape.reversed() { header += Self.u64(UInt64(dim)) } // GGUF lists the contiguous axis first
            header += Self.u32(tensor.typeID) + Self.u64(UInt64(offset))
            offset += Self.padded(tensor.byteCount)
        }
        header += Data(count: Self.padded(header.count) - header.count)
        try AtomicFile.stream(to: path) { (write: (Data) throws(LoRAError) -> Void) throws(LoRAError) in
            try write(header)
            for (index, tensor) in tensors.enumerated() {
                var bytes: Data
                switch tensor.payload {
                case .copied(let source, let info): bytes = Data(source.file.bytes[info.byteRange!])
                case .blocks(let make):
                    bytes = make()
                    guard bytes.count == tensor.byteCount else {
                        throw .quantizedSizeMismatch(what: "\(path): \(tensor.name)", expected: tensor.byteCount, actual: bytes.count)
                    }
                case .values(let type, let make):
                    let values = try make()
                    guard values.shape.reduce(1, *) == tensor.shape.reduce(1, *) else {
                        throw .tensorShapeMismatch(file: path, tensor: tensor.name, expected: tensor.shape, actual: values.shape)
                    }
                    bytes = Self.encode(values, as: type, shape: tensor.shape)
                }
                bytes += Data(count: Self.padded(bytes.count) - bytes.count)
                try write(bytes)
                progress?(WorkProgress(completed: index + 1, total: tensors.count, unit: "tensors"))
            }
        }
    }

    // MARK: Encoding

    static func encode(_ values: Tensor, as type: TensorType, shape: [Int]) -> Data {
        values.withUnsafeBufferPointer { v in
            switch type {
            case .f32: return Data(buffer: v)
            case .f16: return v.map { ck_float_to_half($0) }.withUnsafeBytes { Data($0) }
            case .q8_0:
                let cols = shape.last!
                var blocks = [ck_block_q8_0](repeating: ck_block_q8_0(), count: v.count / 32)
                _ = ck_quantize_q8_0(v.baseAddress, Int32(v.count / cols), Int32(cols), &blocks)
                return blocks.withUnsafeBytes { Data($0) }
            case .q4_0:
                let cols = shape.last!
                var blocks = [ck_block_q4_0](repeating: ck_block_q4_0(), count: v.count / 32)
                _ = ck_quantize_q4_0(v.baseAddress, Int32(v.count / cols), Int32(cols), &blocks)
                return blocks.withUnsafeBytes { Data($0) }
            }
        }
    }

    static func padded(_ count: Int) -> Int { (count + alignment - 1) / alignment * alignment }
    static func u32(_ v: UInt32) -> Data { withUnsafeBytes(of: v.littleEndian) { Data($0) } }
    static func u64(_ v: UInt64) -> Data { withUnsafeBytes(of: v.littleEndian) { Data($0) } }
    static func string(_ s: String) -> Data { u64(UInt64(s.utf8.count)) + Data(s.utf8) }
}
