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

    static func jsonString(_ s: String) -> String {
        String(data: try! JSONSerialization.data(withJSONObject: s, options: .fragmentsAllowed), encoding: .utf8)!
    }
}
