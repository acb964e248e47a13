import Foundation

/// Prints one benchmark figure a line as JSON, with its baseline measured in the same run
/// (the shape every suite shares: suite, name, value, unit, baseline, baseline_value, ratio).
public struct BenchmarkReport: Sendable {
    public let suite: String

    public init(suite: String) {
        self.suite = suite
    }

    public func emit(_ name: String, _ value: Double, unit: String, baseline: String, baselineValue: Double) {
        func format(_ v: Double) -> String { String(format: "%.4g", v) }
        let fields: [(String, String)] = [
            ("suite", "\"\(suite)\""), ("name", "\"\(name)\""), ("value", format(value)), ("unit", "\"\(unit)\""),
            ("baseline", "\"\(baseline)\""), ("baseline_value", format(baselineValue)), ("ratio", format(value / baselineValue)),
        ]
        print("{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}")
        fflush(nil)
    }
}

public enum BenchmarkEnvironment {
    /// $SWIFT_LORA_MODEL, else the default model in the cache scripts/fetch-model fills.
    public static var modelPath: String {
        let environment = ProcessInfo.processInfo.environment
        let cache = environment["SWIFT_LORA_CACHE"] ?? "\(NSHomeDirectory())/.cache/swift-lora"
        return environment["SWIFT_LORA_MODEL"] ?? "\(cache)/SmolLM2-135M-Instruct.Q4_1.gguf"
    }

    /// $SWIFT_LORA_LARGE_MODEL: a 7B-shaped GGUF (`lora synthesize`) for the suites' large
    /// lines, which run only when it is set (not part of `make test`).
    public static var largeModelPath: String? { ProcessInfo.processInfo.environment["SWIFT_LORA_LARGE_MODEL"] }

    /// Peak resident memory of this process so far, MiB.
    public static func peakRSS() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024
    }

    /// GB/s memory delivers to `threads` threads each summing its share of a 256 MiB buffer
    /// (eight times a 32 MiB L3, so every byte comes from memory) as 8 interleaved streams
    /// (this VM's memory serves several streams a core faster than one): the bound on any
    /// product that streams its weights. The median of 5 passes after one unmeasured.
    public static func memoryReadRate(threads: Int) -> Double {
        let streams = 8 // the eight sums below
        let count = 256 << 20 / MemoryLayout<SIMD16<Float>>.stride
        let length = count / (threads * streams) // vectors in one stream
        // each thread reads its own slice and writes its own sum
        nonisolated(unsafe) let buffer = UnsafeMutablePointer<SIMD16<Float>>.allocate(capacity: count)
        defer { buffer.deallocate() }
        buffer.initialize(repeating: SIMD16(repeating: 1), count: count)
        nonisolated(unsafe) let sums = UnsafeMutablePointer<Float>.allocate(capacity: threads)
        defer { sums.deallocate() }
        func pass() -> Double {
            let start = Date()
            DispatchQueue.concurrentPerform(iterations: threads) { t in
                let base = buffer + t * streams * length
                // one register each (an array of sums would go through memory every add)
                var (s0, s1, s2, s3, s4, s5, s6, s7) = (
                    SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(),
                    SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>()
                )
                for j in 0..<length {
                    s0 += base[j]
                    s1 += base[length + j]
                    s2 += base[2 * length + j]
                    s3 += base[3 * length + j]
                    s4 += base[4 * length + j]
                    s5 += base[5 * length + j]
                    s6 += base[6 * length + j]
                    s7 += base[7 * length + j]
                }
                sums[t] = (s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7).sum()
            }
            return Date().timeIntervalSince(start)
        }
        _ = pass()
        let seconds = (0..<5).map { _ in pass() }.sorted()
        precondition((0..<threads).allSatisfy { sums[$0] > 0 }, "memoryReadRate: the sums were not computed")
        return Double(threads * streams * length * MemoryLayout<SIMD16<Float>>.stride) / seconds[2] / 1e9
    }
}
