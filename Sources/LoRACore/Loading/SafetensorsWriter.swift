import Foundation

/// Writes f32 tensors as a safetensors file the way the `safetensors` Python package does:
/// keys sorted, data in key order, the JSON header padded with spaces to 8 bytes.
public enum SafetensorsWriter {
    public static func data(_ tensors: [String: Tensor], metadata: [String: String] = ["format": "pt"]) -> Data {
        let names = tensors.keys.sorted()
        var header = "{"
        if !metadata.isEmpty {
            let fields = metadata.sorted { $0.key < $1.key }.map { "\(jsonString($0.key)):\(jsonString($0.value))" }
            header += "\"__metadata__\":{\(fields.joined(separator: ","))}"
        }
        var offset = 0
        for name in names {
            let bytes = tensors[name]!.count * MemoryLayout<Float>.size
            header += "\(header.count > 1 ? "," : "")\(jsonString(name)):{\"dtype\":\"F32\",\"shape\":\(tensors[name]!.shape),"
                + "\"data_offsets\":[\(offset),\(offset + bytes)]}"
            offset += bytes
        }
        header += "}"
        while header.utf8.count % 8 != 0 { header += " " }
        var data = Data()
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { data.append(contentsOf: $0) }
        data.append(contentsOf: header.utf8)
        for name in names { tensors[name]!.withUnsafeBufferPointer { data.append(Data(buffer: $0)) } }
        return data
    }

    /// Writes the file atomically.
    public static func write(_ tensors: [String: Tensor], metadata: [String: String] = ["format": "pt"], to path: String) throws(LoRAError) {
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
        var header = "{"
        if !metadata.isEmpty {
            let fields = metadata.sorted { $0.key < $1.key }.map { "\(jsonString($0.key)):\(jsonString($0.value))" }
            header += "\"__metadata__\":{\(fields.joined(separator: ","))}"
        }
        var offset = 0
        for entry in sorted {
            header += "\(header.count > 1 ? "," : "")\(jsonString(entry.name)):{\"dtype\":\"\(entry.dtype)\",\"shape\":\(entry.shape),"
                + "\"data_offsets\":[\(offset),\(offset + entry.byteCount)]}"
            offset += entry.byteCount
        }
        header += "}"
        while header.utf8.count % 8 != 0 { header += " " }
        let temporary = "\(path).tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: temporary, contents: nil), let handle = FileHandle(forWritingAtPath: temporary) else {
            throw .unwritableFile(file: path, reason: "cannot create \(temporary)")
        }
        do throws(LoRAError) {
            defer { try? handle.close() }
            var start = withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { Data($0) }
            start.append(contentsOf: header.utf8)
            try GGUFWriter.write(start, to: handle, path: path)
            for entry in sorted {
                let bytes = try entry.bytes()
                guard bytes.count == entry.byteCount else {
                    throw .tensorShapeMismatch(file: path, tensor: entry.name, expected: [entry.byteCount], actual: [bytes.count])
                }
                try GGUFWriter.write(bytes, to: handle, path: path)
            }
        } catch {
            unlink(temporary)
            throw error
        }
        guard rename(temporary, path) == 0 else {
            unlink(temporary)
            throw .unwritableFile(file: path, reason: String(cString: strerror(errno)))
        }
    }

    static func jsonString(_ s: String) -> String {
        String(data: try! JSONSerialization.data(withJSONObject: s, options: .fragmentsAllowed), encoding: .utf8)!
    }
}
