/// A rate with its 95% Wilson interval, as results files and reports carry it.
public struct RateSummary: Codable, Sendable, Equatable {
    public let count: Int
    public let total: Int
    public let rate: Double
    public let lower: Double
    public let upper: Double

    public init(count: Int, total: Int) {
        let interval = WilsonInterval(successes: count, trials: total)
        self.count = count
        self.total = total
        rate = interval.rate
        lower = interval.lower
        upper = interval.upper
    }
}
