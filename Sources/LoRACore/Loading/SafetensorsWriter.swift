import CKernels
import Foundation

/// Writes f32 tensors as a safetensors file the way the `safetensors` Python package does:
/// keys sorted, data in key order, the JSON header padded with spaces to 8 bytes.
public enum SafetensorsWriter {
    public static func data(_ tensors: [String: Tensor], metadata: [String: String] = ["format": "pt"]) -> Data {
        let names = tensors.keys.sorted()
        var data = header(names.map { ($0, "F32", tensors[$0]!.shape, tensors[$0]!.count * MemoryLayout<Float>.size) }, metadata: metadata)
        for name in names { tensors[name]!.withUnsafeBufferPointer { data.append(Data(buffer: $0)) } }
        return data
    }

    /// f32 values stored as a safetensors dtype: F32 as is, F16 (IEEE half) and BF16, each
    /// rounded to nearest even as torch converts.
    static func encode(_ values: Tensor, dtype: String) -> Data {
        values.withUnsafeBufferPointer { v in
            switch dtype {
            case "F16": return v.map { ck_float_to_half($0) }.withUnsafeBytes { Data($0) }
            case "BF16":
                return v.map { UInt16((($0.bitPattern &+ 0x7FFF &+ (($0.bitPattern >> 16) & 1)) >> 16)) }.withUnsafeBytes { Data($0) }
            default: return Data(buffer: v)
            }
        }
    }

    /// The length prefix and JSON header for tensors in this order, padded with spaces to 8 bytes.
    static func header(_ tensors: [(name: String, dtype: String, shape: [Int], byteCount: Int)], metadata: [String: String]) -> Data {
        // fields joined once: appending to one growing String while asking its `count` (a
        // walk over every character) made a checkpoint's header quadratic in its tensors
        var fields: [String] = []
        if !metadata.isEmpty {
            let entries = metadata.sorted { $0.key < $1.key }.map { "\(jsonString($0.key)):\(jsonString($0.value))" }
            fields.append("\"__metadata__\":{\(entries.joined(separator: ","))}")
        }
        var offset = 0
        for tensor in tensors {
            fields.append(
                "\(jsonString(tensor.name)):{\"dtype\":\"\(tensor.dtype)\",\"shape\":\(tensor.shape),"
                    + "\"data_offsets\":[\(offset),\(offset + tensor.byteCount)]}")
            offset += tensor.byteCount
        }
        var header = "{" + fields.joined(separator: ",") + "}"
        while header.utf8.count % 8 != 0 { header += " " }
        var data = withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { Data($0) }
        data.append(contentsOf: header.utf8)
        return data
    }

    /// Writes the file atomically.
    public static func write(_ tensors: [String: Tensor], metadata: [String: String] = ["format": "pt"], to path: String) throws(LoRAError)
    {
        try AtomicFile.write(data(tensors, metadata: metadata), to: path)
    }

    /// A tensor of a streamed file: its bytes are made when the file is written.
    public struct Entry {
        public let name: String
        /// "F32", "F16", "BF16", …
        public let dtype: String
        public let shape: [Int]
        public let byteCount: Int
        let bytes: () throws(LoRAError) -> Data

        public init(name: String, dtype: String, shape: [Int], byteCount: Int, bytes: @escaping () throws(LoRAError) -> Data) {
            self.name = name
            self.dtype = dtype
            self.shape = shape
            self.byteCount = byteCount
            self.bytes = bytes
        }
    }

    /// Writes `entries` one tensor at a time (a model's shard never sits in memory whole),
    /// keys sorted as the Python package writes them, under a temporary name renamed at the end.
    public static func write(entries: [Entry], metadata: [String: String] = ["format": "pt"], to path: String) throws(LoRAError) {
        let sorted = entries.sorted { $0.name < $1.name }
        try AtomicFile.stream(to: path) { (write: (Data) throws(LoRAError) -> Void) throws(LoRAError) in
            try write(header(sorted.map { ($0.name, $0.dtype, $0.shape, $0.byteCount) }, metadata: metadata))
            for entry in sorted {
                let bytes = try entry.bytes()
                guard bytes.count == entry.byteCount else {
                    throw .tensorShapeMismatch(file: path, tensor: entry.name, expected: [entry.byteCount], actual: [bytes.count])
                }
                try write(bytes)
            }
        }
    }

    static func jsonString(_ s: String) -> String {
        String(data: try! JSONSerialization.data(withJSONObject: s, options: .fragmentsAllowed), encoding: .utf8)!
    }
}
