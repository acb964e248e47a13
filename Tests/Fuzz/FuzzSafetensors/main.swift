import FuzzSupport
import LoRACore

/// A safetensors file: the length prefix and JSON header, then every tensor's values.
func fuzzSafetensors(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let path = FuzzInput.write(start, count, name: "input.safetensors")
    guard let file = try? SafetensorsFile(path: path) else { return 0 }
    for name in file.tensors.keys { _ = try? file.values(of: name) }
    return 0
}

FuzzInput.run(fuzzSafetensors)
