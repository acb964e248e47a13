import Foundation

/// LoRA adapters in Hugging Face PEFT's format: a folder with `adapter_config.json` and
/// `adapter_model.safetensors` whose keys are `base_model.model.<module>.lora_A.weight` and
/// `….lora_B.weight` (<doc:AdapterFormats>). Weights are in Hugging Face layout.
public struct PEFTAdapter: Sendable {
    public let folder: String
    public let rank: Int
    public let alpha: Float
    public let useRSLoRA: Bool
    /// lora_dropout: applied only while training.
    public let dropout: Float
    public let targetModules: [String]
    /// Per module path (`model.layers.3.self_attn.q_proj`): A [rank, in], B [out, rank], scale.
    public let modules: [String: LoRAAdapter]

    public init(folder: String) throws(LoRAError) {
        self.folder = folder
        let configPath = "\(folder)/adapter_config.json"
        guard let data = FileManager.default.contents(atPath: configPath) else {
            throw .unreadableFile(file: configPath, reason: "no adapter_config.json in the folder")
        }
        guard let config = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw .malformedFile(file: configPath, problem: "not a JSON object")
        }
        guard (config["peft_type"] as? String)?.uppercased() == "LORA" else {
            throw .invalidMetadata(
                file: configPath, key: "peft_type", problem: "\(config["peft_type"] ?? "missing"), only LORA is supported")
        }
        // what this library cannot apply faithfully is refused, not silently ignored
        let unsupported: [(key: String, refused: Bool)] = [
            ("use_dora", config["use_dora"] as? Bool == true), ("fan_in_fan_out", config["fan_in_fan_out"] as? Bool == true),
            ("bias", (config["bias"] as? String).map { $0 != "none" } ?? false), ("lora_bias", config["lora_bias"] as? Bool == true),
            ("modules_to_save", !((config["modules_to_save"] as? [Any])?.isEmpty ?? true)),
        ]
        if let refused = unsupported.first(where: \.refused) {
            throw .invalidMetadata(file: configPath, key: refused.key, problem: "this setting is not supported")
        }
        rank = config["r"] as? Int ?? 8
        alpha = (config["lora_alpha"] as? NSNumber)?.floatValue ?? 8
        useRSLoRA = config["use_rslora"] as? Bool ?? false
        dropout = (config["lora_dropout"] as? NSNumber)?.floatValue ?? 0
        targetModules =
            (config["target_modules"] as? [String]) ?? (config["target_modules"] as? String).map { [$0] } ?? ["q_proj", "v_proj"]
        let rankPattern = (config["rank_pattern"] as? [String: Int]) ?? [:]
        let alphaPattern = ((config["alpha_pattern"] as? [String: NSNumber]) ?? [:]).mapValues(\.floatValue)

        let weights = try SafetensorsFile(path: "\(folder)/adapter_model.safetensors")
        var pairs: [String: (a: String?, b: String?)] = [:]
        for key in weights.tensors.keys {
            guard key.hasPrefix("base_model.model."), let suffix = [".lora_A.weight", ".lora_B.weight"].first(where: key.hasSuffix) else {
                throw .invalidMetadata(
                    file: weights.path, key: key, problem: "not a LoRA weight (base_model.model.<module>.lora_A/B.weight)")
            }
            let module = String(key.dropFirst("base_model.model.".count).dropLast(suffix.count))
            if suffix.contains("lora_A") { pairs[module, default: (nil, nil)].a = key } else { pairs[module, default: (nil, nil)].b = key }
        }
        var modules: [String: LoRAAdapter] = [:]
        for (module, pair) in pairs {
            guard let aKey = pair.a, let bKey = pair.b else {
                throw .missingTensor(file: weights.path, tensor: "base_model.model.\(module).\(pair.a == nil ? "lora_A" : "lora_B").weight")
            }
            let a = try weights.values(of: aKey)
            let b = try weights.values(of: bKey)
            // PEFT matches pattern keys against the end of the module name
            func pattern<T>(_ patterns: [String: T]) -> T? {
                patterns.first { module == $0.key || module.hasSuffix("." + $0.key) }?.value
            }
            let r = pattern(rankPattern) ?? rank
            let moduleAlpha = pattern(alphaPattern) ?? alpha
            guard a.rank == 2, b.rank == 2, a.shape[0] == r, b.shape[1] == r else {
                throw .tensorShapeMismatch(file: weights.path, tensor: "\(module) lora_A/lora_B", expected: [r], actual: a.shape + b.shape)
            }
            modules[module] = LoRAAdapter(
                a: a, b: b, scale: LoRAAdapter.scale(alpha: moduleAlpha, rank: r, rsLoRA: useRSLoRA),
                dropout: dropout)
        }
        self.modules = modules
    }
}

/// A PEFT adapter checked against one model and laid out for it, ready to put on and take
/// off between forward passes (a server switches between several this way).
public final class PreparedAdapter: @unchecked Sendable {
    /// The folder it was read from.
    public let folder: String
    fileprivate let modules: [(linear: Linear, adapter: any LinearAdapter)]

    fileprivate init(folder: String, modules: [(linear: Linear, adapter: any LinearAdapter)]) {
        self.folder = folder
        self.modules = modules
    }
}

extension LlamaModel {
    /// Checks every projection an adapter names against the model's shape and lays the
    /// adapter out for it. GGUF models keep Q/K rows permuted for adjacent-pair RoPE, so the
    /// rows of lora_B for q_proj and k_proj are permuted the same way (`RoPELayout.outputRows`).
    public func prepare(_ adapter: PEFTAdapter) throws(LoRAError) -> PreparedAdapter {
        var prepared: [(linear: Linear, adapter: any LinearAdapter)] = []
        for (module, lora) in adapter.modules.sorted(by: { $0.key < $1.key }) {
            guard let (layer, projection) = Projection.parse(modulePath: module), layer < layers.count else {
                throw .invalidMetadata(file: adapter.folder, key: module, problem: "the model has no such projection")
            }
            let linear = layers[layer][projection]
            guard lora.inFeatures == linear.inFeatures, lora.outFeatures == linear.outFeatures else {
                throw .tensorShapeMismatch(
                    file: adapter.folder, tensor: module, expected: [linear.outFeatures, linear.inFeatures],
                    actual: [lora.outFeatures, lora.inFeatures])
            }
            let b = ropeLayout.outputRows(lora.b, of: projection, headDim: config.headDim)
            prepared.append((linear, LoRAAdapter(a: lora.a, b: b, scale: lora.scale, dropout: lora.dropout)))
        }
        return PreparedAdapter(folder: adapter.folder, modules: prepared)
    }

    /// Puts an adapter on every projection it names (replacing any there), after checking
    /// each one (`prepare`).
    public func attach(_ adapter: PEFTAdapter) throws(LoRAError) {
        for (linear, lora) in try prepare(adapter).modules { linear.adapter = lora }
    }

    /// The adapters on the model now, to put back with `use`.
    public var attachedAdapters: PreparedAdapter {
        PreparedAdapter(folder: "", modules: projections.compactMap { _, linear in linear.adapter.map { (linear, $0) } })
    }

    /// Runs with exactly this adapter from now on (nil: none). The pointer swap costs
    /// nothing; `prepare` did the work.
    public func use(_ adapter: PreparedAdapter?) {
        detachAdapters()
        for (linear, lora) in adapter?.modules ?? [] { linear.adapter = lora }
    }

    /// Removes every adapter. Runs before every forward pass of a batch that switches
    /// adapters, so it walks the layers' projections without `projections`' module paths.
    public func detachAdapters() {
        for layer in layers {
            for projection in Projection.allCases { layer[projection].adapter = nil }
        }
    }

    /// Writes the attached LoRA adapters as a PEFT adapter folder: `adapter_model.safetensors`
    /// with PEFT's key names for the Hugging Face modules, in Hugging Face's row order (a GGUF
    /// model's permuted Q/K rows of lora_B put back), and `adapter_config.json` as PEFT's
    /// save_pretrained writes it (keys sorted, indent 2). Each file is written atomically.
    public func savePEFTAdapter(_ configuration: LoRAConfiguration, to folder: String, baseModel: String? = nil) throws(LoRAError) {
        do {
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        } catch {
            throw .unwritableFile(file: folder, reason: error.localizedDescription)
        }
        try SafetensorsWriter.write(peftTensors(), to: "\(folder)/adapter_model.safetensors")
        let settings: [String: Any] = [
            "alpha_pattern": [String: Any](), "base_model_name_or_path": baseModel ?? NSNull(), "bias": "none",
            "fan_in_fan_out": false, "inference_mode": true, "init_lora_weights": true, "layers_pattern": NSNull(),
            "layers_to_transform": configuration.layers ?? NSNull(), "lora_alpha": configuration.alpha, "lora_bias": false,
            "lora_dropout": configuration.dropout, "modules_to_save": NSNull(), "peft_type": "LORA", "r": configuration.rank,
            "rank_pattern": [String: Any](), "revision": NSNull(), "target_modules": configuration.targets.sorted(),
            "task_type": "CAUSAL_LM", "use_dora": false, "use_rslora": configuration.rsLoRA,
        ]
        let json = try! JSONSerialization.data(withJSONObject: settings, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])
        try AtomicFile.write(json, to: "\(folder)/adapter_config.json")
    }

    /// The attached LoRA adapters' A and B (or, with `gradients`, dL/dA and dL/dB) under
    /// PEFT's keys (`base_model.model.<module>.lora_A.weight`), in Hugging Face's row order.
    public func peftTensors(gradients: Bool = false) -> [String: Tensor] {
        var tensors: [String: Tensor] = [:]
        for (layer, decoder) in layers.enumerated() {
            for (projection, linear) in decoder.projections {
                guard let adapter = linear.trainableAdapter else { continue }
                let module = projection.modulePath(layer: layer)
                let b = ropeLayout.outputRows(
                    gradients ? adapter.gradientB : adapter.b, of: projection, headDim: config.headDim,
                    toHuggingFace: true)
                tensors["base_model.model.\(module).lora_A.weight"] = gradients ? adapter.gradientA : adapter.a
                tensors["base_model.model.\(module).lora_B.weight"] = b
            }
        }
        return tensors
    }
}
