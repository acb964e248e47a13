import Evaluation
import Testing

/// Reference values: scipy.stats.binomtest(k, n).proportion_ci(method="wilson").
@Test(arguments: [(5, 100, 0.0215, 0.1118), (0, 50, 0.0, 0.0713), (50, 50, 0.9287, 1.0), (260, 520, 0.4572, 0.5428)])
func wilsonIntervalMatchesScipy(k: Int, n: Int, lower: Double, upper: Double) {
    let ci = WilsonInterval(successes: k, trials: n)
    #expect(abs(ci.lower - lower) < 5e-5 && abs(ci.upper - upper) < 5e-5, "\(k)/\(n): [\(ci.lower), \(ci.upper)]")
    #expect(ci.lower <= ci.rate && ci.rate <= ci.upper)
}

@Test func noTrialsGiveTheWholeRange() {
    let ci = WilsonInterval(successes: 0, trials: 0)
    #expect(ci.lower == 0 && ci.upper == 1)
}
