import Foundation
import LoRACore
import Testing

/// The memory plan against what the model allocates on the tiny Llama 2 fixture, byte for
/// byte: the weights, the activations a pass keeps (all of them, or the inputs when
/// recomputing), the transposed copies a backward pass builds and the adapter; and the
/// Llama 2 projections against the published sizes.
@Suite(.serialized) struct TrainingMemoryTests {
    @Test(arguments: WeightPrecision.allCases)
    func thePlanIsWhatATinyModelAllocates(precision: WeightPrecision) throws {
        let model = try LanguageModel.load(path: Fixtures.url("tiny-llama2/hf-f32").path, precision: precision).model
        // adapters from layer 1 of 2: layer 0 keeps nothing, layer 1 everything
        var settings = TrainingSettings()
        settings.lora = LoRAConfiguration(rank: 3, alpha: 6, layers: [1])
        settings.batchSize = 2
        settings.sequenceLength = 6
        let plan = TrainingMemory(config: model.config, settings: settings, precision: precision)
        #expect(plan.baseWeights == model.byteCount)

        let attached = model.attachLoRA(settings.lora, seed: 5)
        #expect(plan.adapterParameters == attached.reduce(0) { $0 + $1.adapter.a.count + $1.adapter.b.count })
        let tokens: [Int32] = [1, 17, 230, 54, 99, 3, 1, 45, 6, 399, 120, 7]
        let batch = TrainingBatch(tokens: tokens, targets: tokens.map { _ in 3 }, sequences: [6, 6])
        #expect(model.keptActivationBytes(batch, recompute: false) == plan.layerActivations)
        #expect(model.keptActivationBytes(batch, recompute: true) == plan.layerInput)

        // transposed copies exist for int8 weights only, built by the first backward pass
        #expect(model.transposedCopyBytes == 0)
        if precision == .int8 { model.backwardData = .transposedCopy }
        _ = model.accumulateGradients(batch, lossScale: 1, recompute: false)
        #expect(model.transposedCopyBytes == (precision == .int8 ? plan.backwardCopies : 0))
        #expect(precision == .int8 ? plan.backwardCopies > 0 : plan.backwardCopies == 0)
        model.backwardData = .direct
        #expect(model.transposedCopyBytes == 0)
    }

    @Test(arguments: [("7b", 6_738_415_616), ("13b", 13_015_864_320), ("70b", 68_976_648_192)])
    func llama2ProjectionsFollowTheShapes(size: String, parameters: Int) throws {
        let config = try Fixtures.json("llama2-configs/Llama-2-\(size)-chat-hf.config.json", as: LlamaConfig.self)
        var settings = TrainingSettings()
        settings.lora = LoRAConfiguration(rank: 16, alpha: 32)
        settings.sequenceLength = 512
        let memory = TrainingMemory(config: config, settings: settings)
        // the published parameter counts, at Q8_0's 34 bytes per 32 weights (norms in f32)
        #expect(abs(Double(memory.baseWeights) / (Double(parameters) * 34 / 32) - 1) < 0.001)
        let perLayer =
            16
            * (4 * config.hiddenSize + 2 * config.keyValueWidth + 2 * config.queryWidth + 3 * (config.hiddenSize + config.intermediateSize))
        #expect(memory.adapterParameters == config.numHiddenLayers * perLayer)
        // per token and layer: the input, q k v, attention's mixed, the residual, gate, up and
        // two rstd values, in f32; per sequence and head the [512, 512] probabilities
        let d = config.hiddenSize
        let tokens = 4 * 512
        let perToken = 2 * d + 2 * config.queryWidth + 2 * config.keyValueWidth + 2 * config.intermediateSize + 2
        #expect(memory.layerActivations == (tokens * perToken + 4 * config.numAttentionHeads * 512 * 512) * 4)
        #expect(memory.layerInput == tokens * d * 4)
        print("Llama 2 \(size), rank 16, batch 4 × 512:\n\(memory.report(memory.plan(settings)))")
        // the plan a budget makes: recompute when keeping activations takes the run past it,
        // transposed copies only when they fit too; the peak summed from the parts
        let keptTotal = memory.total(recompute: false, copies: false)
        let recomputedTotal = memory.total(recompute: true, copies: false)
        let cases: [(budget: Int, recompute: Bool, copies: Bool)] = [
            (keptTotal, false, false), (keptTotal + memory.backwardCopies, false, true),
            (recomputedTotal, true, false), (recomputedTotal + memory.backwardCopies, true, true),
        ]
        for (budget, recompute, copies) in cases where recompute == (budget < keptTotal) {
            settings.memoryBudget = budget
            let plan = memory.plan(settings)
            let activations = recompute ? memory.activationsRecomputed : memory.activationsKept
            #expect(plan.recompute == recompute && plan.backwardData == (copies ? .transposedCopy : .direct))
            #expect(
                plan.totalBytes == memory.baseWeights + (copies ? memory.backwardCopies : 0) + memory.adapter + memory.optimizer
                    + activations)
            #expect(plan.totalBytesWithCopies == plan.totalBytesWithoutCopies + memory.backwardCopies)
            let decoded = try JSONDecoder().decode(MemoryPlan.self, from: Data(plan.json.utf8))
            #expect(decoded == plan && plan.json.contains("\"total_bytes\":\(plan.totalBytes)"))
        }
        // a 4-bit base reads its blocks directly whatever the budget: no copies to plan
        settings.memoryBudget = Int.max
        let q4 = TrainingMemory(config: config, settings: settings, precision: .q4)
        #expect(q4.plan(settings).backwardData == .direct && q4.plan(settings).totalBytesWithCopies == nil && q4.backwardCopies == 0)
        #expect(abs(Double(q4.baseWeights) / (Double(parameters) * 18 / 32) - 1) < 0.001)
    }
}
