import LoRACore
import Testing

@Suite struct BufferCacheTests {
    /// A freed buffer comes back for the next request of its size; a request of another size
    /// that would take live plus cached bytes past the most ever live releases the oldest
    /// cached buffers first, so the cache never raises the peak; `release` empties it.
    @Test func reusesBuffersWithoutRaisingThePeak() {
        let cache = BufferCache()
        let page = BufferCache.pageBytes
        let a = cache.take(bytes: 4 * page).pointer
        let b = cache.take(bytes: 2 * page).pointer
        #expect(cache.usage == (cached: 0, live: 6 * page, peak: 6 * page))
        cache.give(a, bytes: 4 * page)
        cache.give(b, bytes: 2 * page)
        #expect(cache.usage == (cached: 6 * page, live: 0, peak: 6 * page))
        // a hit: the same memory again, nothing allocated
        let again = cache.take(bytes: 4 * page).pointer
        #expect(again == a && cache.usage == (cached: 2 * page, live: 4 * page, peak: 6 * page))
        // a miss of 3 pages: 4 live + 2 cached + 3 new would pass the peak of 6, so b goes
        let c = cache.take(bytes: 3 * page).pointer
        #expect(cache.usage == (cached: 0, live: 7 * page, peak: 7 * page))
        cache.give(again, bytes: 4 * page)
        cache.give(c, bytes: 3 * page)
        // 1 new page and 7 cached would pass it again: the oldest cached buffer goes
        let d = cache.take(bytes: page).pointer
        #expect(cache.usage == (cached: 3 * page, live: page, peak: 7 * page))
        cache.give(d, bytes: page)
        cache.releaseAll()
        #expect(cache.usage == (cached: 0, live: 0, peak: 7 * page))
        // under the peak a miss keeps what is cached
        let e = cache.take(bytes: page).pointer
        cache.give(e, bytes: page)
        let f = cache.take(bytes: 2 * page).pointer
        #expect(cache.usage == (cached: page, live: 2 * page, peak: 7 * page))
        cache.give(f, bytes: 2 * page)
        cache.releaseAll()
    }

    /// Long-lived buffers (weights) bypass the cache but count as live: loading them after a
    /// large buffer was freed releases that buffer rather than keeping both.
    @Test func longLivedBuffersReleaseCachedOnes() {
        let cache = BufferCache()
        let page = BufferCache.pageBytes
        cache.give(cache.take(bytes: 4 * page).pointer, bytes: 4 * page)
        #expect(cache.usage == (cached: 4 * page, live: 0, peak: 4 * page))
        cache.count(bytes: 2 * page)
        #expect(cache.usage == (cached: 0, live: 2 * page, peak: 4 * page))
        cache.uncount(bytes: 2 * page)
        #expect(cache.usage == (cached: 0, live: 0, peak: 4 * page))
    }

    /// Tensors of the cached sizes read and write as any other, and a cached buffer handed out
    /// again still holds its old bytes, so `Tensor(zeros:)` must and does clear it.
    @Test func zerosAreZeroOnReusedMemory() {
        let count = BufferCache.minimumBytes / 4 + 3
        do {
            var t = Tensor(zeros: [count])
            t.withUnsafeMutableBufferPointer { for i in $0.indices { $0[i] = 1 } }
        }
        let zeros = Tensor(zeros: [count])
        #expect(zeros.scalars.allSatisfy { $0 == 0 })
    }

    /// With no cached buffer of its size, a request takes the smallest cached one up to twice
    /// as large (already in memory) rather than mapping new pages, and counts it whole.
    @Test func takesTheSmallestLargerBufferUpToTwiceTheSize() {
        let cache = BufferCache()
        let page = BufferCache.pageBytes
        let big = cache.take(bytes: 8 * page)
        let mid = cache.take(bytes: 5 * page)
        let small = cache.take(bytes: 3 * page)
        for buffer in [big, mid, small] { cache.give(buffer.pointer, bytes: buffer.bytes) }
        let three = cache.take(bytes: 3 * page)
        #expect(three.pointer == small.pointer && three.bytes == 3 * page)
        let four = cache.take(bytes: 4 * page)
        #expect(four.pointer == mid.pointer && four.bytes == 5 * page)
        #expect(cache.usage == (cached: 8 * page, live: 8 * page, peak: 16 * page))
        // 8 pages are more than twice 3: a new mapping
        let other = cache.take(bytes: 3 * page)
        #expect(other.pointer != big.pointer && other.bytes == 3 * page)
        for buffer in [three, four, other] { cache.give(buffer.pointer, bytes: buffer.bytes) }
        cache.releaseAll()
    }

    /// Cached sizes are eight a doubling from `minimumBytes` up: whole pages, never more than
    /// 1/8 above the request, and requests a few percent apart share one size.
    @Test func roundsLargeSizesToEightADoubling() {
        let page = BufferCache.pageBytes
        #expect(BufferCache.roundedSize(1) == page)
        #expect(BufferCache.roundedSize(BufferCache.minimumBytes - 1) == BufferCache.minimumBytes)
        for bytes in stride(from: BufferCache.minimumBytes, through: 64 << 20, by: 123_457) {
            let rounded = BufferCache.roundedSize(bytes)
            #expect(rounded >= bytes && rounded % page == 0 && rounded - bytes <= bytes / 8 + page, "\(bytes) -> \(rounded)")
        }
        #expect(BufferCache.roundedSize(1_900_000) == BufferCache.roundedSize(1_953_792))
        #expect(BufferCache.roundedSize(1 << 20) == 1 << 20 && BufferCache.roundedSize((1 << 20) + 1) == (1 << 20) + (1 << 17))
    }
}
