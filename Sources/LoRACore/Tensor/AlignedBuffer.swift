/// Memory aligned to a cache line (and so to any SIMD load), owned by a class so tensors
/// and weights can share it without copying. Zero-filled unless it is kernel scratch.
/// Transient buffers (tensors, scratch) of `BufferCache.minimumBytes` or more come from and
/// go back to the `BufferCache`; weights and KV caches, which live long, only count in it.
final class AlignedBuffer: @unchecked Sendable {
    static let alignment = 64
    let byteCount: Int
    let pointer: UnsafeMutableRawPointer
    /// Its size in the cache (`BufferCache.roundedSize` or more) when it is large enough to count:
    /// transient ones come from the cache and go back to it, long-lived ones only count in its
    /// live bytes, so that what it caches never adds to them past the peak.
    private let counted: (bytes: Int, cached: Bool)?
    /// Counts the write accesses through any tensor on this memory, so that something derived
    /// from the contents (a LoRA adapter's transposes) knows when to derive it again.
    var version = 0

    init(byteCount: Int, zeroed: Bool = true, transient: Bool = true) {
        self.byteCount = byteCount
        let large = byteCount >= BufferCache.minimumBytes
        if large, transient {
            let taken = BufferCache.shared.take(bytes: BufferCache.roundedSize(byteCount))
            (pointer, counted) = (taken.pointer, (taken.bytes, true)) // page-aligned
        } else {
            counted = large ? (BufferCache.roundedSize(byteCount), false) : nil
            if let counted { BufferCache.shared.count(bytes: counted.bytes) }
            // never zero bytes: the kernels receive a valid address even for empty tensors
            pointer = .allocate(byteCount: max(byteCount, Self.alignment), alignment: Self.alignment)
        }
        if zeroed { pointer.initializeMemory(as: UInt8.self, repeating: 0, count: max(byteCount, Self.alignment)) }
    }

    deinit {
        guard let counted else { return pointer.deallocate() }
        if counted.cached {
            BufferCache.shared.give(pointer, bytes: counted.bytes)
        } else {
            pointer.deallocate()
            BufferCache.shared.uncount(bytes: counted.bytes)
        }
    }
}
