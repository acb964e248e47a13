import Foundation
import LoRACore
import Testing

/// AdamW with global-norm clipping, the learning-rate schedules and LoRA's dropout against
/// PyTorch (torch.optim.AdamW, clip_grad_norm_, transformers' get_*_schedule_with_warmup,
/// autograd through inverted dropout): scripts/make-optimizer-fixtures.py.
struct OptimizerTests {
    struct Fixture: Decodable {
        struct Schedule: Decodable {
            let shape: LearningRateSchedule.Shape
            let warmup, total: Int
            let peak: Float
            let rates: [Double]
        }
        struct AdamWRun: Decodable {
            struct Step: Decodable {
                let grad_a, grad_b: [Float]
                let lr: Float
                let grad_norm: Double
                let a, b: [Float]
            }
            let initial: [String: [Float]]
            let weight_decay, clip: Float
            let steps: [Step]
        }
        struct LoRADropout: Decodable {
            let tokens, inputs, outputs, rank: Int
            let p, scale: Float
            let seed: UInt64
            let x, a, b, dy, y, grad_a, grad_b, grad_x: [Float]
        }
        let schedules: [Schedule]
        let adamw: AdamWRun
        let lora_dropout: LoRADropout
    }

    static let fixture = try! Fixtures.json("pytorch-optimizer.json", as: Fixture.self)

    static func worst(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).map { abs($0 - $1) }.max() ?? .infinity }

    static func write(_ values: [Float], into tensor: Tensor) {
        var tensor = tensor
        tensor.withUnsafeMutableBufferPointer { for i in $0.indices { $0[i] = values[i] } }
    }

    @Test func schedulesMatchTransformers() {
        for case let s in Self.fixture.schedules {
            let schedule = LearningRateSchedule(peak: s.peak, shape: s.shape, warmupSteps: s.warmup, totalSteps: s.total)
            for (step, expected) in s.rates.enumerated() {
                #expect(
                    abs(Double(schedule.rate(at: step)) - expected) <= 1e-7 * s.peak.magnitude.double + 1e-12,
                    "\(s.shape) warmup \(s.warmup) of \(s.total), step \(step)")
            }
        }
    }

    @Test func adamWWithClippingMatchesPyTorch() throws {
        let run = Self.fixture.adamw
        let adapter = LoRAAdapter(
            a: try Tensor(shape: [3, 5], values: run.initial["a"]!), b: try Tensor(shape: [4, 3], values: run.initial["b"]!),
            scale: 1)
        let optimizer = AdamW(adapters: [("m", adapter)], settings: AdamW.Settings(weightDecay: run.weight_decay, clipNorm: run.clip))
        var clipped = 0
        for (index, step) in run.steps.enumerated() {
            Self.write(step.grad_a, into: adapter.gradientA)
            Self.write(step.grad_b, into: adapter.gradientB)
            let norm = optimizer.update(learningRate: step.lr)
            if norm > Double(run.clip) { clipped += 1 }
            #expect(abs(norm - step.grad_norm) <= 1e-6 * step.grad_norm, "step \(index + 1): norm \(norm) against \(step.grad_norm)")
            let error = max(Self.worst(adapter.a.scalars, step.a), Self.worst(adapter.b.scalars, step.b))
            #expect(error <= 2e-6, "step \(index + 1): worst parameter difference \(error)")
            adapter.zeroGradients()
        }
        #expect(clipped >= 2 && clipped < run.steps.count) // the fixture exercises both branches
    }

    @Test func loraDropoutMatchesAutograd() throws {
        let d = Self.fixture.lora_dropout
        let adapter = LoRAAdapter(
            a: try Tensor(shape: [d.rank, d.inputs], values: d.a), b: try Tensor(shape: [d.outputs, d.rank], values: d.b),
            scale: d.scale, dropout: d.p)
        adapter.dropoutSeed = d.seed
        let x = try Tensor(shape: [d.tokens, d.inputs], values: d.x)
        let y = Tensor(zeros: [d.tokens, d.outputs])
        adapter.addOutput(of: x, to: y)
        #expect(Self.worst(y.scalars, d.y) <= 1e-5)
        let dx = Tensor(zeros: x.shape)
        adapter.backward(input: x, outputGradient: try Tensor(shape: [d.tokens, d.outputs], values: d.dy), inputGradient: dx)
        #expect(Self.worst(adapter.gradientA.scalars, d.grad_a) <= 1e-5)
        #expect(Self.worst(adapter.gradientB.scalars, d.grad_b) <= 1e-5)
        #expect(Self.worst(dx.scalars, d.grad_x) <= 1e-5)
        // without a seed (evaluation) the same adapter applies no dropout: its output differs
        adapter.dropoutSeed = nil
        let plain = Tensor(zeros: [d.tokens, d.outputs])
        adapter.addOutput(of: x, to: plain)
        #expect(Self.worst(plain.scalars, d.y) > 1e-3)
    }
}

extension Float {
    fileprivate var double: Double { Double(self) }
}
