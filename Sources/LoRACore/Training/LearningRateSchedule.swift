import Foundation

/// The learning rate at each optimizer step: constant, or a linear warm-up then constant,
/// linear decay to 0 or cosine decay to 0 (transformers' get_*_schedule_with_warmup).
public struct LearningRateSchedule: Sendable, Codable, Equatable {
    public enum Shape: String, Sendable, Codable, CaseIterable { case constant, linear, cosine }

    public var peak: Float
    public var shape: Shape
    public var warmupSteps: Int
    public var totalSteps: Int

    public init(peak: Float, shape: Shape = .constant, warmupSteps: Int = 0, totalSteps: Int) {
        self.peak = peak
        self.shape = shape
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
    }

    /// The rate of step `step` (counting from 0), as transformers' schedules give it: the
    /// warm-up rises linearly from 0 at step 0 (so a run with a warm-up, as with transformers'
    /// Trainer, takes its first step at rate 0).
    public func rate(at step: Int) -> Float {
        if step < warmupSteps { return peak * Float(step) / Float(max(1, warmupSteps)) }
        let decaySteps = max(1, totalSteps - warmupSteps)
        let progress = min(1, Double(step - warmupSteps) / Double(decaySteps))
        switch shape {
        case .constant: return peak
        case .linear: return peak * Float(1 - progress)
        case .cosine: return peak * Float(0.5 * (1 + cos(Double.pi * progress)))
        }
    }
}
