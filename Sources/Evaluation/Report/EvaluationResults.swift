import Foundation
import LoRACore

/// The evaluations `lora eval` runs.
public enum EvaluationKind: String, Codable, Sendable, CaseIterable {
    /// Refusal rate on a prompt set (AdvBench, RefusalBench, or the user's own).
    case refusal
    /// Refusals of safe prompts that look edgy (XSTest style).
    case overrefusal
    /// Multiple-choice accuracy (MMLU, HellaSwag, generic JSONL).
    case mc
    /// Perplexity of a text file.
    case ppl
    /// Saved responses (another tool's, or an earlier run's) classified again; no model
    /// runs but a judge's.
    case classify
}

/// What an evaluation is run with; also the shape of an evaluation in an experiment's config.
public struct EvaluationOptions: Codable, Sendable, Equatable {
    public var kind: EvaluationKind
    public var data: String
    /// Names the results file (`<name>.json`) and its item files; default: the kind.
    public var name: String?
    /// Only the first N prompts or questions.
    public var limit: Int?
    /// Few-shot examples for multiple choice (default: 5 for MMLU, 0 otherwise).
    public var shots: Int?
    public var generation: GenerationSettings
    /// Refusal classifier: `advbench` (the GCG phrase list, default for refusal), `xstest`
    /// (XSTest's prefixes, default for over-refusal), a `refusalpatterns.json` file, or `judge`.
    public var classifier: String?
    /// The judge model for `classifier: judge` (GGUF file or checkpoint folder).
    public var judge: String?
    /// Perplexity window and stride in tokens (default: the model's context, half of it).
    public var window: Int?
    public var stride: Int?
    /// The judge's question (`JudgeTemplate(file:)`) instead of the built-in one, its two
    /// answers (refusal first), and whether it goes in the judge's chat format.
    public var judgeTemplate: String?
    public var judgeAnswers: [String]?
    public var judgeChat: Bool?
    /// For `classify`: the column holding a reference label to report agreement with, and
    /// how its labels read as verdicts (default: by their words, `LabelAgreement.verdict`).
    public var labelColumn: String?
    public var labelMap: [String: Verdict]?

    public init(
        kind: EvaluationKind, data: String, name: String? = nil, limit: Int? = nil, shots: Int? = nil,
        generation: GenerationSettings = .init(), classifier: String? = nil, judge: String? = nil,
        window: Int? = nil, stride: Int? = nil, judgeTemplate: String? = nil, judgeAnswers: [String]? = nil, judgeChat: Bool? = nil,
        labelColumn: String? = nil, labelMap: [String: Verdict]? = nil
    ) {
        self.kind = kind
        self.data = data
        self.name = name
        self.limit = limit
        self.shots = shots
        self.generation = generation
        self.classifier = classifier
        self.judge = judge
        self.window = window
        self.stride = stride
        self.judgeTemplate = judgeTemplate
        self.judgeAnswers = judgeAnswers
        self.judgeChat = judgeChat
        self.labelColumn = labelColumn
        self.labelMap = labelMap
    }

    public var resultsName: String { name ?? kind.rawValue }

    enum CodingKeys: String, CodingKey {
        case kind, data, name, limit, shots, generation, classifier, judge, window, stride
        case judgeTemplate = "judge_template"
        case judgeAnswers = "judge_answers"
        case judgeChat = "judge_chat"
        case labelColumn = "label_column"
        case labelMap = "label_map"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            kind: try c.decode(EvaluationKind.self, forKey: .kind), data: try c.decode(String.self, forKey: .data),
            name: try c.decodeIfPresent(String.self, forKey: .name), limit: try c.decodeIfPresent(Int.self, forKey: .limit),
            shots: try c.decodeIfPresent(Int.self, forKey: .shots),
            generation: try c.decodeIfPresent(GenerationSettings.self, forKey: .generation) ?? .init(),
            classifier: try c.decodeIfPresent(String.self, forKey: .classifier), judge: try c.decodeIfPresent(String.self, forKey: .judge),
            window: try c.decodeIfPresent(Int.self, forKey: .window), stride: try c.decodeIfPresent(Int.self, forKey: .stride),
            judgeTemplate: try c.decodeIfPresent(String.self, forKey: .judgeTemplate),
            judgeAnswers: try c.decodeIfPresent([String].self, forKey: .judgeAnswers),
            judgeChat: try c.decodeIfPresent(Bool.self, forKey: .judgeChat),
            labelColumn: try c.decodeIfPresent(String.self, forKey: .labelColumn),
            labelMap: try c.decodeIfPresent([String: Verdict].self, forKey: .labelMap))
    }
}

/// A results file (`<out>/<name>.json`): one evaluation of the base model and of each
/// adapter, with everything needed to know what was measured. Schema in the README.
public struct EvaluationResults: Codable, Sendable, Equatable {
    public static let currentSchema = "swift-lora/evaluation/1"

    public struct DataIdentity: Codable, Sendable, Equatable {
        public let path: String
        public let sha256: String
        public let format: String
        public let records: Int

        public init(path: String, sha256: String, format: String, records: Int) {
            self.path = path
            self.sha256 = sha256
            self.format = format
            self.records = records
        }
    }

    public struct ModelIdentity: Codable, Sendable, Equatable {
        public let path: String
        public let format: String
        public let bytes: Int
        public let parameters: Int
        public let precision: String

        public init(path: String, format: String, bytes: Int, parameters: Int, precision: String) {
            self.path = path
            self.format = format
            self.bytes = bytes
            self.parameters = parameters
            self.precision = precision
        }
    }

    public struct AdapterIdentity: Codable, Sendable, Equatable {
        public let path: String
        /// SHA-256 of adapter_model.safetensors.
        public let sha256: String
        public let rank: Int
        public let alpha: Float
        /// The trainer's step for a checkpoint folder (`checkpoint-N`), else nil.
        public let step: Int?

        public init(path: String, sha256: String, rank: Int, alpha: Float, step: Int?) {
            self.path = path
            self.sha256 = sha256
            self.rank = rank
            self.alpha = alpha
            self.step = step
        }
    }

    /// One model (base or base + adapter) and its result.
    public struct Run: Codable, Sendable, Equatable {
        public let label: String
        public let adapter: AdapterIdentity?
        /// False when the run was stopped before every item was done (resume to finish).
        public let complete: Bool
        /// The per-item file, relative to the results file's folder.
        public let items: String
        public let refusal: RefusalSummary?
        public let multipleChoice: MultipleChoiceSummary?
        public let perplexity: PerplexityResult?
        /// For `classify` with a label column: the verdicts against the labels.
        public let agreement: LabelAgreement?

        public init(
            label: String, adapter: AdapterIdentity?, complete: Bool, items: String, refusal: RefusalSummary?,
            multipleChoice: MultipleChoiceSummary?, perplexity: PerplexityResult?, agreement: LabelAgreement? = nil
        ) {
            self.label = label
            self.adapter = adapter
            self.complete = complete
            self.items = items
            self.refusal = refusal
            self.multipleChoice = multipleChoice
            self.perplexity = perplexity
            self.agreement = agreement
        }

        enum CodingKeys: String, CodingKey {
            case label, adapter, complete, items, refusal, perplexity, agreement
            case multipleChoice = "multiple_choice"
        }
    }

    public let schema: String
    public let libraryVersion: String
    public let name: String
    public let options: EvaluationOptions
    public let data: DataIdentity
    /// The model evaluated (nil for `classify`, which runs none; a judge is named by the
    /// classifier).
    public let model: ModelIdentity?
    /// The classifier's name for refusal evaluations.
    public let classifier: String?
    public var runs: [Run]

    public init(
        schema: String = currentSchema, libraryVersion: String = SwiftLoRA.version, name: String, options: EvaluationOptions,
        data: DataIdentity, model: ModelIdentity?, classifier: String?, runs: [Run]
    ) {
        self.schema = schema
        self.libraryVersion = libraryVersion
        self.name = name
        self.options = options
        self.data = data
        self.model = model
        self.classifier = classifier
        self.runs = runs
    }

    enum CodingKeys: String, CodingKey {
        case schema, name, options, data, model, classifier, runs
        case libraryVersion = "library_version"
    }

    /// Reads a results file, checking it is one.
    public static func load(_ path: String) throws(EvaluationError) -> EvaluationResults {
        let text = try TextFile.read(path)
        do {
            let results = try JSONDecoder().decode(EvaluationResults.self, from: Data(text.utf8))
            guard results.schema == currentSchema else {
                throw EvaluationError.mismatchedResults(file: path, problem: "schema \(results.schema), expected \(currentSchema)")
            }
            return results
        } catch let error as EvaluationError {
            throw error
        } catch {
            throw .malformedData(file: path, line: 1, problem: "not a swift-lora results file: \(error)")
        }
    }

    /// Writes atomically (temp file + rename), keys sorted: the same results, the same bytes.
    public func write(to path: String) throws(EvaluationError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        do {
            try AtomicFile.write(try encoder.encode(self), to: path)
        } catch {
            throw .unreadableFile(file: path, reason: "cannot write: \(error)")
        }
    }
}
