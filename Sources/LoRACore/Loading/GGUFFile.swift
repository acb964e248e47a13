/// A metadata value of a GGUF file.
public enum GGUFValue: Sendable, Equatable {
    case uint(UInt64)
    case int(Int64)
    case float(Double)
    case bool(Bool)
    case string(String)
    case array([GGUFValue])

    /// Integers of any width and sign, as llama.cpp accepts them (files store `uint64`
    /// keys of the spec as `uint32`).
    public var intValue: Int? {
        switch self {
        case .uint(let v): v <= UInt64(Int.max) ? Int(v) : nil
        case .int(let v): Int(v)
        default: nil
        }
    }

    public var floatValue: Double? {
        switch self {
        case .float(let v): v
        case .uint, .int: intValue.map(Double.init)
        default: nil
        }
    }

    public var stringValue: String? { if case .string(let s) = self { s } else { nil } }
    public var boolValue: Bool? { if case .bool(let b) = self { b } else { nil } }
    public var arrayValue: [GGUFValue]? { if case .array(let a) = self { a } else { nil } }
}

/// A tensor's entry in a GGUF file's table.
public struct GGUFTensorInfo: Sendable {
    public let name: String
    /// Row-major shape, outermost first: GGUF's dims reversed, so a weight is [out, in].
    public let shape: [Int]
    /// The ggml type id as stored.
    public let typeID: UInt32
    /// The type, when this library can read it.
    public let type: TensorDataType?
    /// Absolute byte range in the file (nil when the type is unknown: its size is too).
    public let byteRange: Range<Int>?
}

/// A GGUF v2/v3 file, memory-mapped: its metadata and its tensor table, each tensor's
/// bytes left in the mapping until a loader converts them (<doc:FileFormats>).
public final class GGUFFile: @unchecked Sendable {
    public let path: String
    public let version: UInt32
    /// Metadata in file order.
    public let metadata: [(key: String, value: GGUFValue)]
    public let tensors: [GGUFTensorInfo]
    public let alignment: Int
    let file: MappedFile
    /// Each metadata entry's bytes in the file (key, type and value): copied verbatim when a
    /// derived file is written, so every value keeps its exact GGUF type.
    let rawMetadata: [String: Range<Int>]
    private let metadataIndex: [String: GGUFValue]
    private let tensorIndex: [String: Int]

    public convenience init(path: String) throws(LoRAError) {
        try self.init(file: MappedFile(path: path))
    }

    init(file: MappedFile) throws(LoRAError) {
        self.file = file
        path = file.path
        var reader = ByteReader(file: path, bytes: file.bytes)
        let magic = try reader.read(UInt32.self, "the magic number")
        guard magic == 0x4655_4747 else {
            throw .malformedFile(
                file: path, problem: "not a GGUF file (magic bytes \(String(magic, radix: 16)), expected 46554747 \"GGUF\")")
        }
        version = try reader.read(UInt32.self, "the version")
        guard version == 2 || version == 3 else {
            throw .malformedFile(file: path, problem: "GGUF version \(version) is not supported (2 and 3 are)")
        }
        let tensorCount = try reader.read(UInt64.self, "the tensor count")
        let metadataCount = try reader.read(UInt64.self, "the metadata count")
        // Every entry takes at least 8 bytes of length prefix: a count beyond that is a lie
        // that must not become an allocation.
        guard metadataCount <= UInt64(reader.remaining / 12), tensorCount <= UInt64(reader.remaining / 24) else {
            throw .truncatedFile(
                file: path, what: "\(metadataCount) metadata entries and \(tensorCount) tensor entries",
                offset: reader.offset)
        }

        var metadata: [(key: String, value: GGUFValue)] = []
        var index: [String: GGUFValue] = [:]
        var raw: [String: Range<Int>] = [:]
        for i in 0..<Int(metadataCount) {
            let start = reader.offset
            let key = try Self.readString(&reader, "metadata key \(i)")
            let type = try reader.read(UInt32.self, "the type of \(key)")
            let value = try Self.readValue(&reader, type: type, key: key, depth: 0)
            metadata.append((key, value))
            index[key] = value
            raw[key] = start..<reader.offset
        }
        self.metadata = metadata
        rawMetadata = raw
        metadataIndex = index

        alignment =
            try index["general.alignment"].map { value throws(LoRAError) in
                guard let a = value.intValue, a > 0, a % 8 == 0, a <= 1 << 20 else {
                    throw .invalidMetadata(file: file.path, key: "general.alignment", problem: "must be a positive multiple of 8")
                }
                return a
            } ?? 32

        var infos: [(name: String, dims: [Int], type: UInt32, offset: UInt64)] = []
        for i in 0..<Int(tensorCount) {
            let name = try Self.readString(&reader, "the name of tensor \(i)")
            let rank = try reader.read(UInt32.self, "the rank of \(name)")
            guard rank <= 8 else { throw .malformedFile(file: path, problem: "tensor \(name) claims \(rank) dimensions") }
            var dims: [Int] = []
            for d in 0..<Int(rank) {
                let dim = try reader.read(UInt64.self, "dimension \(d) of \(name)")
                guard dim <= UInt64(Int32.max) else { throw .malformedFile(file: path, problem: "tensor \(name) has dimension \(dim)") }
                dims.append(Int(dim))
            }
            let type = try reader.read(UInt32.self, "the type of \(name)")
            let offset = try reader.read(UInt64.self, "the offset of \(name)")
            infos.append((name, dims, type, offset))
        }
        let dataStart = (reader.offset + alignment - 1) / alignment * alignment

        var tensors: [GGUFTensorInfo] = []
        var tensorIndex: [String: Int] = [:]
        for info in infos {
            let shape = Array(info.dims.reversed())
            let type = TensorDataType(ggmlType: info.type)
            var range: Range<Int>?
            if let type {
                guard let size = type.byteCount(shape: shape) else {
                    throw .malformedFile(file: path, problem: "tensor \(info.name) of shape \(shape) does not fit \(type.rawValue) blocks")
                }
                guard info.offset % UInt64(alignment) == 0, info.offset <= UInt64(file.bytes.count) else {
                    throw .malformedFile(
                        file: path, problem: "tensor \(info.name) has offset \(info.offset), not aligned or beyond the file")
                }
                let start = dataStart + Int(info.offset)
                guard start <= file.bytes.count - size else {
                    throw .truncatedFile(file: path, what: "the data of tensor \(info.name)", offset: start)
                }
                range = start..<start + size
            }
            guard tensorIndex[info.name] == nil else { throw .malformedFile(file: path, problem: "tensor \(info.name) appears twice") }
            tensorIndex[info.name] = tensors.count
            tensors.append(GGUFTensorInfo(name: info.name, shape: shape, typeID: info.type, type: type, byteRange: range))
        }
        self.tensors = tensors
        self.tensorIndex = tensorIndex
    }

    public subscript(key: String) -> GGUFValue? { metadataIndex[key] }

    public func tensor(named name: String) -> GGUFTensorInfo? { tensorIndex[name].map { tensors[$0] } }

    /// A tensor's values as f32 [shape], exactly as stored (dequantized).
    public func values(of name: String) throws(LoRAError) -> Tensor {
        try slice(name).dequantized()
    }

    func slice(_ name: String) throws(LoRAError) -> TensorSlice {
        guard let info = tensor(named: name) else { throw .missingTensor(file: path, tensor: name) }
        guard let type = info.type, let range = info.byteRange else {
            throw .unsupportedTensorType(file: path, tensor: name, type: "ggml type \(info.typeID)")
        }
        return TensorSlice(
            name: name, shape: info.shape, type: type,
            bytes: UnsafeRawBufferPointer(rebasing: file.bytes[range]), fileRange: range)
    }

    private static func readString(_ reader: inout ByteReader, _ what: @autoclosure () -> String) throws(LoRAError) -> String {
        let length = try reader.read(UInt64.self, what())
        guard length <= UInt64(reader.remaining) else { throw .truncatedFile(file: reader.file, what: what(), offset: reader.offset) }
        return try reader.readString(count: Int(length), what())
    }

    private static func readValue(_ reader: inout ByteReader, type: UInt32, key: String, depth: Int) throws(LoRAError) -> GGUFValue {
        let what = "the value of \(key)"
        switch type {
        case 0: return .uint(UInt64(try reader.read(UInt8.self, what)))
        case 1: return .int(Int64(try reader.read(Int8.self, what)))
        case 2: return .uint(UInt64(try reader.read(UInt16.self, what)))
        case 3: return .int(Int64(try reader.read(Int16.self, what)))
        case 4: return .uint(UInt64(try reader.read(UInt32.self, what)))
        case 5: return .int(Int64(try reader.read(Int32.self, what)))
        case 6: return .float(Double(Float(bitPattern: try reader.read(UInt32.self, what))))
        case 7:
            let byte = try reader.read(UInt8.self, what)
            guard byte <= 1 else { throw .invalidMetadata(file: reader.file, key: key, problem: "bool holds \(byte)") }
            return .bool(byte == 1)
        case 8: return .string(try readString(&reader, what))
        case 9:
            guard depth < 4 else { throw .invalidMetadata(file: reader.file, key: key, problem: "arrays nested too deep") }
            let elementType = try reader.read(UInt32.self, what)
            let count = try reader.read(UInt64.self, what)
            // A count the remaining bytes cannot hold is a truncated or lying file: caught here,
            // before it becomes an allocation.
            guard count <= UInt64(reader.remaining / minimumSize(of: elementType)) else {
                throw .truncatedFile(file: reader.file, what: what, offset: reader.offset)
            }
            var values: [GGUFValue] = []
            values.reserveCapacity(Int(count))
            for _ in 0..<Int(count) { values.append(try readValue(&reader, type: elementType, key: key, depth: depth + 1)) }
            return .array(values)
        case 10: return .uint(try reader.read(UInt64.self, what))
        case 11: return .int(try reader.read(Int64.self, what))
        case 12: return .float(Double(bitPattern: try reader.read(UInt64.self, what)))
        default: throw .invalidMetadata(file: reader.file, key: key, problem: "unknown value type \(type)")
        }
    }

    /// The fewest bytes a value of a type can take.
    private static func minimumSize(of type: UInt32) -> Int {
        switch type {
        case 0, 1, 7: 1
        case 2, 3: 2
        case 4, 5, 6: 4
        case 9: 12
        default: 8
        }
    }
}
