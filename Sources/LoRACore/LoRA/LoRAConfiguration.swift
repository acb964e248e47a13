/// Which projections get a trainable LoRA adapter, and its shape (PEFT's LoraConfig fields).
public struct LoRAConfiguration: Sendable, Codable, Equatable {
    /// Hugging Face module names of a Llama layer's projections.
    public static let allTargets = Projection.allCases.map(\.name)

    /// A target as users write it, `q` or `q_proj`, as the module name `q_proj`.
    public static func targetName(_ name: some StringProtocol) -> String {
        name.hasSuffix("_proj") ? String(name) : "\(name)_proj"
    }

    public var rank: Int
    public var alpha: Float
    public var dropout: Float
    /// alpha/√rank instead of alpha/rank.
    public var rsLoRA: Bool
    /// Module names (`q_proj`, …) that get an adapter.
    public var targets: [String]
    /// Layer indices that get adapters; nil: every layer.
    public var layers: [Int]?

    public init(
        rank: Int = 8, alpha: Float = 16, dropout: Float = 0, rsLoRA: Bool = false, targets: [String] = allTargets,
        layers: [Int]? = nil
    ) {
        self.rank = rank
        self.alpha = alpha
        self.dropout = dropout
        self.rsLoRA = rsLoRA
        self.targets = targets
        self.layers = layers
    }

    /// The scale PEFT applies: alpha/r, or alpha/√r with rsLoRA.
    public var scale: Float { LoRAAdapter.scale(alpha: alpha, rank: rank, rsLoRA: rsLoRA) }

    /// The first setting that does not fit `model` (its name, e.g. `rank`) with the problem;
    /// nil when everything fits.
    public func problem(for model: LlamaConfig) -> (setting: String, problem: String)? {
        if rank < 1 { return ("rank", "rank \(rank) must be at least 1") }
        if !(dropout >= 0 && dropout < 1) { return ("dropout", "dropout \(dropout) must be in [0, 1)") }
        if targets.isEmpty { return ("targets", "no target modules") }
        if let unknown = targets.first(where: { !Self.allTargets.contains($0) }) {
            return ("targets", "unknown target module \(unknown) (known: \(Self.allTargets.joined(separator: ",")))")
        }
        if let layers, let bad = layers.first(where: { $0 < 0 || $0 >= model.numHiddenLayers }) {
            return ("layers", "layer \(bad) is outside the model's \(model.numHiddenLayers) layers")
        }
        return nil
    }
}

extension LlamaModel {
    /// Puts a fresh adapter (PEFT's default initialization: an exact no-op) on every projection
    /// `configuration` names, replacing any adapter there. Each module's A comes from its own
    /// seed derived from `seed` and the module's place in the model.
    @discardableResult
    public func attachLoRA(_ configuration: LoRAConfiguration, seed: UInt64) -> [(path: String, adapter: LoRAAdapter)] {
        var seeds = SeededGenerator(seed: seed)
        var attached: [(path: String, adapter: LoRAAdapter)] = []
        for (index, layer) in layers.enumerated() {
            for (projection, linear) in layer.projections {
                let moduleSeed = seeds.next()
                guard configuration.targets.contains(projection.name), configuration.layers?.contains(index) ?? true else { continue }
                let adapter = LoRAAdapter(
                    inFeatures: linear.inFeatures, outFeatures: linear.outFeatures, rank: configuration.rank,
                    alpha: configuration.alpha, rsLoRA: configuration.rsLoRA, dropout: configuration.dropout,
                    seed: moduleSeed)
                linear.adapter = adapter
                attached.append((projection.modulePath(layer: index), adapter))
            }
        }
        return attached
    }

    /// The LoRA adapters attached now, with their Hugging Face module paths, in model order.
    public var loraAdapters: [(path: String, adapter: LoRAAdapter)] {
        projections.compactMap { path, linear in linear.trainableAdapter.map { (path, $0) } }
    }
}
