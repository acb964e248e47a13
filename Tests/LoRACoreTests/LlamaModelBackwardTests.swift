import CKernels
import Foundation
import LoRACore
import Testing

/// The LoRA backward pass through the whole model on the tiny Llama 2 fixture: every
/// parameter group against central finite differences of the loss, in both Q/K layouts.
@Suite(.serialized) struct LlamaModelBackwardTests {
    static func load(_ form: String, _ precision: WeightPrecision = .f32) throws -> LlamaModel {
        try LanguageModel.load(path: Fixtures.url("tiny-llama2/\(form)").path, precision: precision).model
    }

    /// Two sequences side by side (7 and 5 tokens) with masked prompt positions.
    static let batch = TrainingBatch(
        tokens: [1, 17, 230, 54, 99, 3, 301, 1, 45, 6, 399, 120],
        targets: [-1, -1, 54, 99, 3, 301, -1, -1, 6, 399, 120, -1], sequences: [7, 5])

    /// Random B too (a fresh B is zero, which would leave dA zero and untested).
    static func attachRandom(_ model: LlamaModel, configuration: LoRAConfiguration = .init(rank: 3, alpha: 6), seed: UInt64 = 7)
        -> [(path: String, adapter: LoRAAdapter)]
    {
        let attached = model.attachLoRA(configuration, seed: seed)
        for (index, (_, adapter)) in attached.enumerated() { fill(adapter.b, seed: 1000 + UInt64(index), bound: 0.2) }
        return attached
    }

    static func fill(_ t: Tensor, seed: UInt64, bound: Float) {
        var t = t
        let values = Tensor.uniform(t.shape, in: -bound...bound, seed: seed).scalars
        t.withUnsafeMutableBufferPointer { for i in $0.indices { $0[i] = values[i] } }
    }

    static func nudge(_ t: Tensor, _ index: Int, by delta: Float) {
        var t = t
        t.withUnsafeMutableBufferPointer { $0[index] += delta }
    }

    @Test func aFreshAdapterLeavesTheOutputsUnchangedBitForBit() throws {
        for precision in WeightPrecision.allCases {
            let model = try Self.load("hf-f32", precision)
            let before = try #require(model.forward(Self.batch.tokens, sequences: Self.batch.sequences)).scalars
            let attached = model.attachLoRA(LoRAConfiguration(rank: 8, alpha: 16), seed: 3)
            #expect(attached.count == 14)
            let bound = 1 / Float(64).squareRoot()
            #expect(attached[0].adapter.a.scalars.allSatisfy { abs($0) <= bound } && attached[0].adapter.b.scalars.allSatisfy { $0 == 0 })
            let after = try #require(model.forward(Self.batch.tokens, sequences: Self.batch.sequences)).scalars
            #expect(after == before, "\(precision)")
        }
    }

    /// Sequences side by side give each sequence's own logits (no attention across them).
    @Test func sequencesSideBySideEqualSeparateRuns() throws {
        let model = try Self.load("hf-f32")
        let together = try #require(model.forward(Self.batch.tokens, sequences: [7, 5]))
        let first = try #require(model.forward(Array(Self.batch.tokens[..<7])))
        let second = try #require(model.forward(Array(Self.batch.tokens[7...])))
        let worst = zip(together.scalars, first.scalars + second.scalars).map { abs($0 - $1) }.max()!
        #expect(worst <= 1e-5)
    }

    /// dL/dA and dL/dB of every module against central differences of the mean loss in f32,
    /// Richardson-extrapolated from h = 1e-2 and 5e-3 (at h = 1e-2 alone the curvature of
    /// some entries showed: 2% off, converging to the analytic value as h shrank). Tolerance
    /// from the arithmetic: the loss (≈6) differs between two sides by f32 roundings of ~1e-7
    /// relative, so each quotient carries ~3e-5 of noise (measured at most 1.5e-5 at h = 1e-2),
    /// the extrapolation about twice that: 1e-4 + 1e-2·|g|. Single entries, and each whole
    /// tensor along its own gradient, where the derivative is |g| and must exceed 1e-3, ten
    /// times that tolerance: a wrong formula, off by the gradient's own size, fails.
    @Test(arguments: ["hf-f32", "tiny-llama2.f16.gguf"])
    func gradientsMatchFiniteDifferences(form: String) throws {
        let model = try Self.load(form)
        let attached = Self.attachRandom(model, configuration: LoRAConfiguration(rank: 3, alpha: 6, rsLoRA: form == "hf-f32"))
        let scale = 1 / Float(Self.batch.countedTokens)
        _ = model.accumulateGradients(Self.batch, lossScale: scale, recompute: false)
        func centralDifference(_ parameter: Tensor, direction: [Float]) -> Double {
            // Richardson: (4·D(h/2) − D(h))/3 cancels the h² term of the central difference
            (4 * centralDifference(parameter, direction: direction, h: 5e-3) - centralDifference(parameter, direction: direction, h: 1e-2))
                / 3
        }
        func centralDifference(_ parameter: Tensor, direction: [Float], h: Float) -> Double {
            let step = direction.map { $0 * h }
            let up = try! Tensor(shape: parameter.shape, values: step)
            Kernels.add(up, into: parameter)
            let plus = model.loss(Self.batch).mean
            Kernels.scale(up, by: -2)
            Kernels.add(up, into: parameter)
            let minus = model.loss(Self.batch).mean
            Kernels.scale(up, by: -0.5)
            Kernels.add(up, into: parameter)
            return (plus - minus) / Double(2 * h)
        }
        var worstDirectional = 0.0
        for (path, adapter) in attached {
            for (name, parameter, gradient) in [("A", adapter.a, adapter.gradientA), ("B", adapter.b, adapter.gradientB)] {
                let analytic = gradient.scalars
                for index in stride(from: 0, to: parameter.count, by: max(1, parameter.count / 4)) {
                    var direction = [Float](repeating: 0, count: parameter.count)
                    direction[index] = 1
                    let numeric = centralDifference(parameter, direction: direction)
                    #expect(
                        abs(numeric - Double(analytic[index])) <= 1e-4 + 1e-2 * abs(numeric),
                        "\(form) \(path) \(name)[\(index)]: numeric \(numeric), analytic \(analytic[index])")
                }
                // along the analytic gradient itself: the derivative there is |g| if g is right
                let norm = analytic.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
                let numeric = centralDifference(parameter, direction: analytic.map { Float(Double($0) / norm) })
                let relative = abs(numeric - norm) / norm
                #expect(
                    abs(numeric - norm) <= 1e-4 + 1e-2 * norm && norm > 1e-3,
                    "\(form) \(path) \(name) along g: numeric \(numeric), |g| \(norm)")
                worstDirectional = max(worstDirectional, relative)
            }
        }
        print("tiny Llama 2 \(form): LoRA gradients along g vs finite differences, worst relative error \(worstDirectional)")
    }

    /// Recomputing each layer in the backward pass gives the same gradients bit for bit, and
    /// so do one and two threads; dropout masks are drawn again identically.
    @Test func recomputationAndThreadCountDoNotChangeAnyBit() throws {
        var results: [[Float]] = []
        for (recompute, threads) in [(false, 2), (true, 2), (false, 1), (true, 1)] {
            let model = try Self.load("tiny-llama2.q8_0.gguf", .int8)
            let attached = Self.attachRandom(model, configuration: LoRAConfiguration(rank: 4, alpha: 8, dropout: 0.1))
            for (index, (_, adapter)) in attached.enumerated() { adapter.dropoutSeed = 50 + UInt64(index) }
            let loss = try KernelRuntime.onThisThread(threads: threads) {
                model.accumulateGradients(Self.batch, lossScale: 0.1, recompute: recompute)
            }
            results.append([Float(loss.sum)] + attached.flatMap { $0.adapter.gradientA.scalars + $0.adapter.gradientB.scalars })
        }
        #expect(results.allSatisfy { $0 == results[0] })
        #expect(results[0].contains { $0 != 0 })
    }

    /// Layers below the lowest adapted one are not walked back through, and their
    /// gradients need nothing from them: the upper layer's gradients match a run with
    /// adapters everywhere.
    @Test func backwardStopsAtTheLowestTrainedLayer() throws {
        let full = try Self.load("hf-f32")
        let upper = try Self.load("hf-f32")
        let all = Self.attachRandom(full)
        let top = Self.attachRandom(upper, configuration: LoRAConfiguration(rank: 3, alpha: 6, layers: [1]))
        // the same values for layer 1 in both models
        for (path, adapter) in top {
            let twin = try #require(all.first { $0.path == path }?.adapter)
            Self.fill(adapter.a, seed: 0, bound: 0)
            Kernels.add(twin.a, into: adapter.a)
            Self.fill(adapter.b, seed: 0, bound: 0)
            Kernels.add(twin.b, into: adapter.b)
        }
        for (path, adapter) in all where path.hasPrefix("model.layers.0.") {
            Self.fill(adapter.b, seed: 0, bound: 0) // layer 0 of the full model: a no-op
        }
        _ = full.accumulateGradients(Self.batch, lossScale: 1, recompute: false)
        _ = upper.accumulateGradients(Self.batch, lossScale: 1, recompute: false)
        for (path, adapter) in top {
            let twin = try #require(all.first { $0.path == path }?.adapter)
            #expect(adapter.gradientA.scalars == twin.gradientA.scalars && adapter.gradientB.scalars == twin.gradientB.scalars)
        }
    }
}
