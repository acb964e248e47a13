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
}
