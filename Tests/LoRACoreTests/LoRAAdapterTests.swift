import LoRACore
import Testing

/// The adapter's inference output (the row kernel on Aᵀ, Bᵀ) against its training output
/// (sgemm on A, B), and after A and B change in place, as the optimizer changes them.
struct LoRAAdapterTests {
    @Test func inferenceFollowsTheWeightsAsTheyChange() throws {
        let adapter = LoRAAdapter(a: .uniform([5, 37], seed: 1), b: .uniform([45, 5], seed: 2), scale: 1.5)
        let x = Tensor.uniform([3, 37], seed: 3)
        func output(training: Bool) -> [Float] {
            adapter.dropoutSeed = training ? 7 : nil // dropout 0: the seed only picks the path
            let y = Tensor(zeros: [3, 45])
            adapter.addOutput(of: x, to: y)
            return y.scalars
        }
        func agree() -> Bool {
            zip(output(training: false), output(training: true)).allSatisfy { abs($0 - $1) <= 1e-5 * max(1, abs($1)) }
        }
        #expect(agree())
        let before = output(training: false)
        var (a, b) = (adapter.a, adapter.b)
        b.withUnsafeMutableBufferPointer { for i in $0.indices { $0[i] *= -2 } }
        #expect(agree() && output(training: false) != before)
        a.withUnsafeMutableBufferPointer { $0[0] += 1 }
        #expect(agree())
    }
}
