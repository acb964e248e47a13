import Foundation

/// Everything that decides a fine-tuning run: with the same settings, data and model, the
/// run gives the same adapter bit for bit.
public struct TrainingSettings: Sendable, Codable, Equatable {
    public var lora = LoRAConfiguration()
    public var optimizer = AdamW.Settings()
    public var learningRate: Float = 2e-4
    public var schedule: LearningRateSchedule.Shape = .constant
    public var warmupSteps = 0
    /// Optimizer steps; nil: `epochs` passes over the data.
    public var steps: Int?
    public var epochs = 1
    /// Sequences per micro-batch.
    public var batchSize = 4
    public var sequenceLength = 256
    /// Micro-batches per optimizer step.
    public var gradientAccumulation = 1
    /// Several examples per sequence (never attending to each other) instead of one.
    public var pack = false
    public var evalEvery: Int?
    public var checkpointEvery: Int?
    public var seed: UInt64 = 0
    /// nil: recompute layers in the backward pass only when keeping their activations would
    /// take the run past `memoryBudget`.
    public var recompute: Bool?
    /// How the backward pass reads the frozen weights; nil: int8 weights build their
    /// transposed copies (faster) when the run still fits `memoryBudget` with them, every
    /// other base reads its blocks directly.
    public var backwardData: BackwardDataMode?
    /// Bytes the whole run may take (`TrainingMemory.total`): what decides recomputation and
    /// the transposed copies. Default: three quarters of the RAM.
    public var memoryBudget = Int(ProcessInfo.processInfo.physicalMemory / 4 * 3)

    public init() {}

    /// The first setting that cannot work, as an error naming it (its property path).
    public func validate(model: LlamaConfig) throws(LoRAError) {
        if let (setting, problem) = lora.problem(for: model) { throw .invalidTrainingSetting(setting: "lora.\(setting)", problem: problem) }
        if !(learningRate > 0) { throw .invalidTrainingSetting(setting: "learningRate", problem: "\(learningRate) must be positive") }
        if let steps, steps < 1 { throw .invalidTrainingSetting(setting: "steps", problem: "\(steps) must be at least 1") }
        if epochs < 1 { throw .invalidTrainingSetting(setting: "epochs", problem: "\(epochs) must be at least 1") }
        if batchSize < 1 { throw .invalidTrainingSetting(setting: "batchSize", problem: "\(batchSize) must be at least 1") }
        if sequenceLength < 2 || sequenceLength > model.maxPositionEmbeddings {
            throw .invalidTrainingSetting(
                setting: "sequenceLength", problem: "\(sequenceLength) must be in 2...\(model.maxPositionEmbeddings)")
        }
        if gradientAccumulation < 1 {
            throw .invalidTrainingSetting(setting: "gradientAccumulation", problem: "\(gradientAccumulation) must be at least 1")
        }
        if warmupSteps < 0 { throw .invalidTrainingSetting(setting: "warmupSteps", problem: "\(warmupSteps) must not be negative") }
        if optimizer.weightDecay < 0 { throw .invalidTrainingSetting(setting: "optimizer.weightDecay", problem: "must not be negative") }
        if let clip = optimizer.clipNorm, !(clip > 0) {
            throw .invalidTrainingSetting(setting: "optimizer.clipNorm", problem: "\(clip) must be positive")
        }
        if let evalEvery, evalEvery < 1 { throw .invalidTrainingSetting(setting: "evalEvery", problem: "must be at least 1") }
        if let checkpointEvery, checkpointEvery < 1 {
            throw .invalidTrainingSetting(setting: "checkpointEvery", problem: "must be at least 1")
        }
    }
}

/// When the backward pass recomputes layers: `TrainingSettings.recompute` by name.
public enum RecomputeChoice: String, Sendable, Codable, CaseIterable {
    /// When the kept activations would exceed the memory budget.
    case auto
    case always, never

    public var setting: Bool? {
        switch self {
        case .auto: nil
        case .always: true
        case .never: false
        }
    }
}
