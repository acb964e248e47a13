import Foundation
import LoRACore
import Testing

/// The sampler's filters on hand-made distributions, where the allowed set is known.
struct SamplerTests {
    // log-probabilities of a known distribution: token i has probability p[i]
    static let probabilities: [Float] = [0.5, 0.2, 0.15, 0.1, 0.04, 0.01]
    static let logits = probabilities.map { log($0) + 3 } // any shift is the same distribution

    func draws(_ parameters: SamplingParameters, context: [Int32] = [], count: Int = 2000) -> [Int32: Int] {
        var sampler = Sampler(parameters)
        var seen: [Int32: Int] = [:]
        for _ in 0..<count { seen[sampler.next(logits: Self.logits, context: context), default: 0] += 1 }
        return seen
    }

    @Test func greedyAndTopOneTakeTheArgmax() {
        #expect(draws(.init(temperature: 0)) == [0: 2000])
        #expect(draws(.init(temperature: 1.5, topK: 1, seed: 3)) == [0: 2000])
    }

    @Test func temperatureOneFollowsTheDistribution() {
        let seen = draws(.init(temperature: 1, seed: 5), count: 20_000)
        for (id, p) in Self.probabilities.enumerated() {
            // within 5 standard deviations of the binomial count
            let expected = 20_000 * Double(p)
            let sd = (expected * (1 - Double(p))).squareRoot()
            #expect(abs(Double(seen[Int32(id), default: 0]) - expected) <= 5 * sd + 1, "token \(id)")
        }
    }

    @Test func topKTopPAndMinPRestrictTheCandidates() {
        #expect(Set(draws(.init(temperature: 1, topK: 3, seed: 1)).keys) == [0, 1, 2])
        // cumulative 0.5, 0.7, 0.85: top-p 0.8 keeps the first three
        #expect(Set(draws(.init(temperature: 1, topP: 0.8, seed: 2)).keys) == [0, 1, 2])
        // min-p 0.25 keeps tokens with p >= 0.125: the first three
        #expect(Set(draws(.init(temperature: 1, minP: 0.25, seed: 4)).keys) == [0, 1, 2])
        // a low temperature sharpens: min-p then leaves the top token alone
        #expect(Set(draws(.init(temperature: 0.2, minP: 0.1, seed: 6)).keys) == [0])
    }

    @Test func repetitionPenaltyDemotesTokensInTheContext() {
        // positive logits are divided by the penalty, negative ones multiplied (CTRL, as transformers)
        let logits: [Float] = [2.0, 1.9, -1.0]
        var sampler = Sampler(.init(temperature: 0, repetitionPenalty: 1.2))
        #expect(sampler.next(logits: logits, context: []) == 0)
        #expect(sampler.next(logits: logits, context: [0]) == 1) // 2.0 / 1.2 < 1.9
    }

    @Test func aSeedReproducesItsDraws() {
        let parameters = SamplingParameters(temperature: 0.9, topK: 5, topP: 0.95, seed: 42)
        var a = Sampler(parameters)
        var b = Sampler(parameters)
        var c = Sampler(.init(temperature: 0.9, topK: 5, topP: 0.95, seed: 43))
        let first = (0..<50).map { _ in a.next(logits: Self.logits, context: []) }
        #expect(first == (0..<50).map { _ in b.next(logits: Self.logits, context: []) })
        #expect(first != (0..<50).map { _ in c.next(logits: Self.logits, context: []) })
    }
}
