import Foundation
import LoRACore

/// An experiment's JSON config:
///
///     {"model": PATH, "precision": "int8" | "q4" | "f32" (or "f32": true),
///      "train": {"data": FILE, "eval-data": FILE, "rank": 16, "lr": 0.0003, …},
///      "evaluations": [{"kind": "overrefusal", "data": FILE, …}, …],
///      "checkpoints": true}
///
/// `train` takes `lora finetune`'s option names (with `-` or `_`), each decoded straight
/// into the `TrainingJob`; an unknown name or a value of the wrong type is an error naming it.
extension Experiment {
    /// Reads the config at `path`.
    public static func load(config path: String) throws(EvaluationError) -> Experiment {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .unreadableFile(file: path, reason: "no such file, or it cannot be read")
        }
        do {
            return try JSONDecoder().decode(Experiment.self, from: data)
        } catch let error as EvaluationError {
            throw error
        } catch let DecodingError.keyNotFound(key, context) {
            throw .malformedConfig(file: path, key: Self.path(context.codingPath + [key]), problem: "missing")
        } catch let DecodingError.typeMismatch(_, context), let DecodingError.valueNotFound(_, context),
            let DecodingError.dataCorrupted(context)
        {
            throw .malformedConfig(file: path, key: Self.path(context.codingPath), problem: context.debugDescription)
        } catch {
            throw .malformedConfig(file: path, key: "", problem: "not an experiment config: \(error)")
        }
    }

    static func path(_ keys: [any CodingKey]) -> String {
        keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    }
}

extension Experiment: Decodable {
    enum CodingKeys: String, CodingKey { case model, precision, f32, train, evaluations, checkpoints }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let precision =
            try c.decodeIfPresent(WeightPrecision.self, forKey: .precision)
            ?? (try c.decodeIfPresent(Bool.self, forKey: .f32) == true ? .f32 : .int8)
        self.init(
            model: try c.decodeIfPresent(String.self, forKey: .model), precision: precision,
            training: try c.decode(TrainingJobConfig.self, forKey: .train).job,
            evaluations: try c.decode([EvaluationOptions].self, forKey: .evaluations),
            checkpoints: try c.decodeIfPresent(Bool.self, forKey: .checkpoints) ?? true)
    }
}

/// `train`: `lora finetune`'s options by name.
struct TrainingJobConfig: Decodable {
    let job: TrainingJob

    struct Key: CodingKey {
        let stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Key.self)
        var job = TrainingJob(data: "")
        var hasData = false
        for key in c.allKeys {
            func value<T: Decodable>(_ type: T.Type) throws -> T { try c.decode(type, forKey: key) }
            /// A list given as an array or as finetune's comma-separated text.
            func list<T: Decodable & LosslessStringConvertible>(_ type: T.Type) throws -> [T] {
                if let items = try? c.decode([T].self, forKey: key) { return items }
                let text = try c.decode(String.self, forKey: key)
                return try text.split(separator: ",").map { item in
                    guard let parsed = T(String(item)) else {
                        throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "\"\(item)\" is not a \(T.self)")
                    }
                    return parsed
                }
            }
            var s = job.settings
            switch key.stringValue.replacingOccurrences(of: "_", with: "-") {
            case "data":
                job.data = try value(String.self)
                hasData = true
            case "eval-data": job.heldOutData = try value(String.self)
            case "eval-split": job.heldOutFraction = try value(Double.self)
            case "train-on-prompt": job.trainOnPrompt = try value(Bool.self)
            case "rank": s.lora.rank = try value(Int.self)
            case "alpha": s.lora.alpha = try value(Float.self)
            case "dropout": s.lora.dropout = try value(Float.self)
            case "rslora": s.lora.rsLoRA = try value(Bool.self)
            case "targets": s.lora.targets = try list(String.self).map(LoRAConfiguration.targetName)
            case "layers": s.lora.layers = try list(Int.self)
            case "lr": s.learningRate = try value(Float.self)
            case "schedule": s.schedule = try value(LearningRateSchedule.Shape.self)
            case "warmup": s.warmupSteps = try value(Int.self)
            case "weight-decay": s.optimizer.weightDecay = try value(Float.self)
            case "clip":
                let clip = try value(Float.self)
                s.optimizer.clipNorm = clip > 0 ? clip : nil
            case "epochs": s.epochs = try value(Int.self)
            case "steps": s.steps = try value(Int.self)
            case "batch": s.batchSize = try value(Int.self)
            case "seq-len": s.sequenceLength = try value(Int.self)
            case "grad-accum": s.gradientAccumulation = try value(Int.self)
            case "pack": s.pack = try value(Bool.self)
            case "eval-every": s.evalEvery = try value(Int.self)
            case "checkpoint-every": s.checkpointEvery = try value(Int.self)
            case "seed": s.seed = try value(UInt64.self)
            case "recompute": s.recompute = try value(RecomputeChoice.self).setting
            case "backward-data": s.backwardData = try value(BackwardDataMode.self)
            case "memory-budget": s.memoryBudget = Int(try value(Double.self) * 1_073_741_824)
            default:
                throw DecodingError.dataCorruptedError(forKey: key, in: c, debugDescription: "not an option of lora finetune")
            }
            job.settings = s
        }
        guard hasData else {
            throw DecodingError.keyNotFound(Key(stringValue: "data"), .init(codingPath: c.codingPath, debugDescription: "no training data"))
        }
        self.job = job
    }
}
