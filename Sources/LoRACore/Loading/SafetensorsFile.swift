import Foundation

/// A safetensors file, memory-mapped: an 8-byte header length, a JSON header naming each
/// tensor's dtype, shape and byte range, then the data (<doc:FileFormats>).
public final class SafetensorsFile: @unchecked Sendable {
    public let path: String
    public struct Entry: Sendable {
        public let name: String
        /// "F32", "F16", "BF16", … as stored.
        public let dtype: String
        public let shape: [Int]
        /// Absolute byte range in the file.
        public let byteRange: Range<Int>
    }

    public let tensors: [String: Entry]
    public let metadata: [String: String]
    let file: MappedFile

    public convenience init(path: String) throws(LoRAError) {
        try self.init(file: MappedFile(path: path))
    }

    init(file: MappedFile) throws(LoRAError) {
        self.file = file
        path = file.path
        var reader = ByteReader(file: path, bytes: file.bytes)
        let headerLength = try reader.read(UInt64.self, "the header length")
        // the reference parser caps headers at 100 MB
        guard headerLength <= 100_000_000 else { throw .malformedFile(file: path, problem: "header length \(headerLength) is implausible") }
        let header = try reader.readBytes(Int(headerLength), "the \(headerLength)-byte JSON header")
        let dataStart = reader.offset
        guard let json = try? JSONSerialization.jsonObject(with: Data(header)), let object = json as? [String: Any] else {
            throw .malformedFile(file: path, problem: "the header is not a JSON object")
        }
        var tensors: [String: Entry] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in object {
            if name == "__metadata__" {
                metadata = (value as? [String: String]) ?? [:]
                continue
            }
            guard let info = value as? [String: Any], let dtype = info["dtype"] as? String,
                let shape = info["shape"] as? [Int], let offsets = info["data_offsets"] as? [Int], offsets.count == 2
            else {
                throw .malformedFile(file: path, problem: "tensor \(name) lacks dtype, shape or data_offsets")
            }
            guard shape.allSatisfy({ $0 >= 0 && $0 <= Int(Int32.max) }), offsets[0] >= 0, offsets[0] <= offsets[1] else {
                throw .malformedFile(file: path, problem: "tensor \(name) has shape \(shape) and offsets \(offsets)")
            }
            var count = 1
            for dim in shape {
                let (product, overflow) = count.multipliedReportingOverflow(by: dim)
                guard !overflow else { throw .malformedFile(file: path, problem: "tensor \(name) of shape \(shape) is too large") }
                count = product
            }
            if let size = Self.elementSize(dtype) {
                guard offsets[1] - offsets[0] == count * size else {
                    throw .malformedFile(
                        file: path, problem: "tensor \(name): \(offsets[1] - offsets[0]) bytes for \(count) \(dtype) values")
                }
            }
            guard offsets[1] <= file.bytes.count - dataStart else {
                throw .truncatedFile(file: path, what: "the data of tensor \(name)", offset: dataStart + offsets[0])
            }
            tensors[name] = Entry(name: name, dtype: dtype, shape: shape, byteRange: dataStart + offsets[0]..<dataStart + offsets[1])
        }
        self.tensors = tensors
        self.metadata = metadata
    }

    static func elementSize(_ dtype: String) -> Int? {
        switch dtype {
        case "BOOL", "U8", "I8": 1
        case "F16", "BF16", "I16", "U16": 2
        case "F32", "I32", "U32": 4
        case "F64", "I64", "U64": 8
        default: nil
        }
    }

    func slice(_ name: String) throws(LoRAError) -> TensorSlice {
        guard let entry = tensors[name] else { throw .missingTensor(file: path, tensor: name) }
        guard let type = TensorDataType(rawValue: entry.dtype), [.f32, .f16, .bf16].contains(type) else {
            throw .unsupportedTensorType(file: path, tensor: name, type: entry.dtype)
        }
        return TensorSlice(
            name: name, shape: entry.shape, type: type,
            bytes: UnsafeRawBufferPointer(rebasing: file.bytes[entry.byteRange]), fileRange: entry.byteRange)
    }

    /// A tensor's values as f32.
    public func values(of name: String) throws(LoRAError) -> Tensor {
        try slice(name).dequantized()
    }
}

/// A Hugging Face checkpoint folder: `model.safetensors`, or shards listed by
/// `model.safetensors.index.json`.
final class SafetensorsCheckpoint: CheckpointTensors {
    let path: String
    private let files: [String: SafetensorsFile] // file name → file
    private let location: [String: String] // tensor name → file name

    init(folder: String) throws(LoRAError) {
        path = folder
        let index = "\(folder)/model.safetensors.index.json"
        var names: [String]
        var location: [String: String] = [:]
        if FileManager.default.fileExists(atPath: index) {
            guard let data = FileManager.default.contents(atPath: index),
                let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                let map = json["weight_map"] as? [String: String]
            else {
                throw .malformedFile(file: index, problem: "no weight_map object")
            }
            location = map
            names = Array(Set(map.values)).sorted()
        } else {
            names = ["model.safetensors"]
        }
        var files: [String: SafetensorsFile] = [:]
        for name in names {
            guard !name.contains("/") else { throw .malformedFile(file: index, problem: "shard \(name) is outside the folder") }
            let file = try SafetensorsFile(path: "\(folder)/\(name)")
            files[name] = file
            if names.count == 1 && location.isEmpty { for tensor in file.tensors.keys { location[tensor] = name } }
        }
        self.files = files
        self.location = location
    }

    var storedTypes: [String: Int] {
        Dictionary(files.values.flatMap { $0.tensors.values.map { ($0.dtype, 1) } }, uniquingKeysWith: +)
    }

    var byteCount: Int { files.values.reduce(0) { $0 + $1.file.bytes.count } }

    func contains(_ name: String) -> Bool { location[name] != nil }

    func slice(_ name: String) throws(LoRAError) -> TensorSlice {
        guard let fileName = location[name], let file = files[fileName] else { throw .missingTensor(file: path, tensor: name) }
        return try file.slice(name)
    }

    func release(_ slice: TensorSlice) {
        for file in files.values where file.tensors[slice.name]?.byteRange == slice.fileRange { file.file.release(slice.fileRange) }
    }
}
