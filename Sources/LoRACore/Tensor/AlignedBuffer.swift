/// Memory aligned to a cache line (and so to any SIMD load), owned by a class so tensors
/// and weights can share it without copying. Zero-filled unless it is kernel scratch.
final class AlignedBuffer: @unchecked Sendable {
    static let alignment = 64
    let byteCount: Int
    let pointer: UnsafeMutableRawPointer
    /// Counts the write accesses through any tensor on this memory, so that something derived
    /// from the contents (a LoRA adapter's transposes) knows when to derive it again.
    var version = 0

    init(byteCount: Int, zeroed: Bool = true) {
        self.byteCount = byteCount
        // never zero bytes: the kernels receive a valid address even for empty tensors
        pointer = .allocate(byteCount: max(byteCount, Self.alignment), alignment: Self.alignment)
        if zeroed { pointer.initializeMemory(as: UInt8.self, repeating: 0, count: max(byteCount, Self.alignment)) }
    }

    deinit { pointer.deallocate() }
}
