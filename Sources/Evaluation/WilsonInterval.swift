import Foundation

/// The Wilson score interval for a binomial proportion: every rate this module reports
/// (refusal, over-refusal, accuracy) comes with one. Unlike the normal (Wald) interval it
/// stays inside [0, 1] and is not degenerate at 0 or n successes.
public struct WilsonInterval: Equatable, Sendable {
    public let successes: Int
    public let trials: Int
    public let lower: Double
    public let upper: Double

    public var rate: Double { trials > 0 ? Double(successes) / Double(trials) : 0 }

    /// `z` defaults to the two-sided 95% normal quantile.
    public init(successes: Int, trials: Int, z: Double = 1.959963984540054) {
        precondition(
            trials >= 0 && (0...max(trials, 0)).contains(successes),
            "WilsonInterval: \(successes) successes out of \(trials) trials")
        self.successes = successes
        self.trials = trials
        guard trials > 0 else {
            lower = 0
            upper = 1
            return
        }
        let n = Double(trials)
        let p = Double(successes) / n
        let z2 = z * z
        let center = (p + z2 / (2 * n)) / (1 + z2 / n)
        let half = z / (1 + z2 / n) * (p * (1 - p) / n + z2 / (4 * n * n)).squareRoot()
        lower = max(0, center - half)
        upper = min(1, center + half)
    }
}
