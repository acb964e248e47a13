import Foundation

/// Freed large tensor and scratch memory kept for the next allocation of the same size.
///
/// A training step or a prompt allocates the same large buffers step after step (logits,
/// activations, kernel scratch). Above 32 MiB, and often above 128 KiB, glibc maps them fresh
/// and unmaps them on free, so every step paid the kernel for zeroing and faulting in each page
/// again (6% of a SmolLM2 training step in the kernel, 3% with the cache). Kept here, a freed
/// buffer is reused as it is.
///
/// The cache does not raise the peak of what it counts: when a miss would take live plus
/// cached bytes past the most that was ever live at once, it first releases cached buffers
/// (oldest first) until it fits. Weights and KV caches do not come through it but count in its
/// live bytes (loading a model after a large buffer was freed releases that buffer first).
/// What it holds between jobs is given back by `release()`, which the trainer calls when a run
/// ends (PyTorch's caching allocator works the same way, with `empty_cache()`).
public final class BufferCache: @unchecked Sendable {
    /// The cache every transient `AlignedBuffer` uses.
    static let shared = BufferCache()
    /// Smaller buffers stay with malloc, which reuses them without a system call.
    package static let minimumBytes = 256 << 10
    package static let pageBytes = 4096

    private let lock = NSLock()
    /// Cached buffers, oldest first.
    private var entries: [(bytes: Int, pointer: UnsafeMutableRawPointer)] = []
    private var cachedBytes = 0
    /// Bytes of the buffers taken and not yet given back, and the most there ever were.
    private var liveBytes = 0
    private var peakLiveBytes = 0

    /// A cache of its own (tests); tensors use the shared one.
    package init() {}

    /// The size a cached allocation of `byteCount` bytes takes: the next of eight sizes per
    /// doubling (at most 1/8 more, and whole pages from `minimumBytes` up), so that shapes that
    /// differ from step to step share buffers. Packed sequences change the attention's shapes
    /// every step; with sizes matched to the page, 800 MiB of a SmolLM2 step missed the cache
    /// and was faulted in anew.
    package static func roundedSize(_ byteCount: Int) -> Int {
        let pages = (byteCount + pageBytes - 1) / pageBytes * pageBytes
        guard pages >= minimumBytes else { return pages }
        let step = 1 << (Int.bitWidth - pages.leadingZeroBitCount - 1 - 3)
        return (pages + step - 1) / step * step
    }

    /// A buffer of at least `bytes` (a `roundedSize`) and its size: the most recently cached
    /// one of that size, else the smallest cached one up to twice as large (its pages are
    /// already in memory, where a new mapping would fault each in and, the cache being full,
    /// release another cached buffer first), else a new mapping.
    package func take(bytes: Int) -> (pointer: UnsafeMutableRawPointer, bytes: Int) {
        lock.lock()
        var best: Int?
        for (index, entry) in entries.enumerated().reversed() where entry.bytes >= bytes && entry.bytes <= 2 * bytes {
            if entry.bytes == bytes {
                best = index
                break
            }
            if best.map({ entries[$0].bytes > entry.bytes }) ?? true { best = index }
        }
        if let best {
            let entry = entries.remove(at: best)
            cachedBytes -= entry.bytes
            liveBytes += entry.bytes
            lock.unlock()
            return (entry.pointer, entry.bytes)
        }
        lock.unlock()
        count(bytes: bytes)
        return (Self.map(bytes), bytes)
    }

    /// Counts `bytes` about to be allocated as live (a miss, which maps new pages, or a
    /// long-lived buffer, which malloc serves), first releasing the oldest cached buffers while
    /// live plus cached bytes would pass the peak.
    package func count(bytes: Int) {
        lock.lock()
        liveBytes += bytes
        peakLiveBytes = max(peakLiveBytes, liveBytes)
        var released: [(bytes: Int, pointer: UnsafeMutableRawPointer)] = []
        while liveBytes + cachedBytes > peakLiveBytes, !entries.isEmpty {
            let entry = entries.removeFirst()
            cachedBytes -= entry.bytes
            released.append(entry)
        }
        lock.unlock()
        for entry in released { Self.unmap(entry) }
    }

    /// A counted long-lived buffer of `bytes` was freed.
    package func uncount(bytes: Int) {
        lock.lock()
        liveBytes -= bytes
        lock.unlock()
    }

    package func give(_ pointer: UnsafeMutableRawPointer, bytes: Int) {
        lock.lock()
        entries.append((bytes, pointer))
        cachedBytes += bytes
        liveBytes -= bytes
        lock.unlock()
    }

    /// Cached buffers are pages mapped for them alone: unmapped, they leave the process at once,
    /// where freed into malloc's heap they could stay resident between other blocks (a 7B q4
    /// training step peaked 23% above its plan that way).
    private static func map(_ bytes: Int) -> UnsafeMutableRawPointer {
        guard let pointer = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), pointer != MAP_FAILED
        else { fatalError("BufferCache: cannot map \(bytes) bytes (errno \(errno))") }
        return pointer
    }

    private static func unmap(_ entry: (bytes: Int, pointer: UnsafeMutableRawPointer)) { munmap(entry.pointer, entry.bytes) }

    /// Bytes held for reuse, bytes taken and not given back, and the most ever taken at once.
    package var usage: (cached: Int, live: Int, peak: Int) {
        lock.lock()
        defer { lock.unlock() }
        return (cachedBytes, liveBytes, peakLiveBytes)
    }

    package func releaseAll() {
        lock.lock()
        let released = entries
        entries = []
        cachedBytes = 0
        lock.unlock()
        for entry in released { Self.unmap(entry) }
    }

    /// Gives every buffer the shared cache holds back to the system.
    public static func release() { shared.releaseAll() }
}
