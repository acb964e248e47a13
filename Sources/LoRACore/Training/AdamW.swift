/// AdamW over the LoRA adapters of a model (PyTorch's torch.optim.AdamW: decoupled weight
/// decay, bias correction), with global-norm gradient clipping.
public final class AdamW: @unchecked Sendable {
    public struct Settings: Sendable, Codable, Equatable {
        public var beta1: Float = 0.9
        public var beta2: Float = 0.999
        public var epsilon: Float = 1e-8
        public var weightDecay: Float = 0
        /// The largest global gradient norm; larger gradients are scaled down to it. nil: no clipping.
        public var clipNorm: Float? = 1

        public init(beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8, weightDecay: Float = 0, clipNorm: Float? = 1) {
            self.beta1 = beta1
            self.beta2 = beta2
            self.epsilon = epsilon
            self.weightDecay = weightDecay
            self.clipNorm = clipNorm
        }
    }

    public let settings: Settings
    /// The parameters with their gradients, in a fixed order (the norm sums in it).
    let parameters: [(name: String, value: Tensor, gradient: () -> Tensor)]
    /// First and second moments, by parameter name.
    public private(set) var moments: [String: (m: Tensor, v: Tensor)]
    /// Steps taken.
    public private(set) var step = 0

    /// Over `adapters` (module path and adapter), in their order.
    public init(adapters: [(path: String, adapter: LoRAAdapter)], settings: Settings) {
        self.settings = settings
        parameters = adapters.flatMap { path, adapter in
            [("\(path).lora_A", adapter.a, { adapter.gradientA }), ("\(path).lora_B", adapter.b, { adapter.gradientB })]
        }
        moments = Dictionary(
            uniqueKeysWithValues: parameters.map { ($0.name, (Tensor(zeros: $0.value.shape), Tensor(zeros: $0.value.shape))) })
    }

    /// The global norm of the gradients, summed in double in parameter order.
    public func gradientNorm() -> Double {
        parameters.reduce(0) { $0 + Kernels.sumOfSquares($1.gradient()) }.squareRoot()
    }

    /// Clips, then updates every parameter with `learningRate`. Returns the norm before clipping.
    @discardableResult
    public func update(learningRate: Float) -> Double {
        let norm = gradientNorm()
        step += 1
        let clip: Float = settings.clipNorm.map { norm > Double($0) ? Float(Double($0) / (norm + 1e-6)) : 1 } ?? 1
        for (name, value, gradient) in parameters {
            let g = gradient()
            if clip != 1 { Kernels.scale(g, by: clip) }
            let (m, v) = moments[name]!
            Kernels.adamW(
                parameter: value, gradient: g, m: m, v: v, step: step, learningRate: learningRate, beta1: settings.beta1,
                beta2: settings.beta2, epsilon: settings.epsilon, weightDecay: settings.weightDecay)
        }
        return norm
    }

    /// Restores moments and the step count from a checkpoint.
    public func restore(moments saved: [String: Tensor], step: Int, file: String) throws(LoRAError) {
        for (name, (m, v)) in moments {
            guard let savedM = saved["\(name).exp_avg"], let savedV = saved["\(name).exp_avg_sq"] else {
                throw .missingTensor(file: file, tensor: "\(name).exp_avg")
            }
            guard savedM.shape == m.shape, savedV.shape == v.shape else {
                throw .tensorShapeMismatch(file: file, tensor: "\(name).exp_avg", expected: m.shape, actual: savedM.shape)
            }
            moments[name] = (savedM, savedV)
        }
        self.step = step
    }

    /// The moments as named tensors (PyTorch's state names), for a checkpoint.
    public var momentTensors: [String: Tensor] {
        var tensors: [String: Tensor] = [:]
        for (name, (m, v)) in moments {
            tensors["\(name).exp_avg"] = m
            tensors["\(name).exp_avg_sq"] = v
        }
        return tensors
    }
}
