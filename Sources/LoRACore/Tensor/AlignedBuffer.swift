/// Memory aligned to a cache line (and so to any SIMD load), owned by a class so tensors
/// and weights can share it without copying. Zero-filled unless it is kernel scratch.
/// Transient buffers (tensors, scratch) of `BufferCache.minimumBytes` or more come from and
/// go back to the `BufferCache`; weights and KV caches, which live long, do not.
final class AlignedBuffer: @unchecked Sendable {
    static let alignment = 64
    let byteCount: Int
    let pointer: UnsafeMutableRawPointer
    /// The cached size it was taken with, or nil when it came from the allocator directly.
    private let cachedBytes: Int?
    /// Counts the write accesses through any tensor on this memory, so that something derived
    /// from the contents (a LoRA adapter's transposes) knows when to derive it again.
    var version = 0

    init(byteCount: Int, zeroed: Bool = true, transient: Bool = true) {
        self.byteCount = byteCount
        if transient && byteCount >= BufferCache.minimumBytes {
            let bytes = BufferCache.roundedSize(byteCount)
            cachedBytes = bytes
            pointer = BufferCache.shared.take(bytes: bytes, alignment: Self.alignment)
        } else {
            cachedBytes = nil
            // never zero bytes: the kernels receive a valid address even for empty tensors
            pointer = .allocate(byteCount: max(byteCount, Self.alignment), alignment: Self.alignment)
        }
        if zeroed { pointer.initializeMemory(as: UInt8.self, repeating: 0, count: max(byteCount, Self.alignment)) }
    }

    deinit {
        if let cachedBytes { BufferCache.shared.give(pointer, bytes: cachedBytes) } else { pointer.deallocate() }
    }
}
