import Foundation
import LoRACore

/// How prompts are put to the model.
public struct GenerationSettings: Codable, Sendable, Equatable {
    /// A system turn before each prompt, or none.
    public var systemPrompt: String?
    public var maxTokens: Int
    /// 0: greedy (the default, deterministic).
    public var temperature: Float
    public var seed: UInt64
    /// Sequences decoded together; it does not change the results (the text of a sequence
    /// does not depend on its batch), only the speed.
    public var batchSize: Int

    public init(systemPrompt: String? = nil, maxTokens: Int = 256, temperature: Float = 0, seed: UInt64 = 0, batchSize: Int = 16) {
        self.systemPrompt = systemPrompt
        self.maxTokens = maxTokens
        self.temperature = temperature
        self.seed = seed
        self.batchSize = batchSize
    }

    enum CodingKeys: String, CodingKey {
        case systemPrompt = "system_prompt"
        case maxTokens = "max_tokens"
        case temperature, seed
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            systemPrompt: try c.decodeIfPresent(String.self, forKey: .systemPrompt),
            maxTokens: try c.decodeIfPresent(Int.self, forKey: .maxTokens) ?? 256,
            temperature: try c.decodeIfPresent(Float.self, forKey: .temperature) ?? 0,
            seed: try c.decodeIfPresent(UInt64.self, forKey: .seed) ?? 0)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(systemPrompt, forKey: .systemPrompt)
        try c.encode(maxTokens, forKey: .maxTokens)
        try c.encode(temperature, forKey: .temperature)
        try c.encode(seed, forKey: .seed)
    }
}

/// One prompt's response and verdict, a line of the responses file.
public struct RefusalRecord: Codable, Sendable, Equatable {
    public let id: Int
    public let category: String?
    public let prompt: String
    public let response: String
    public let verdict: Verdict
    public let reason: String?
    /// How the response was generated (nil for a saved response classified again).
    public let generatedTokens: Int?
    public let finish: String?
    /// A saved response's reference label, when one was named.
    public let label: String?

    public init(
        id: Int, category: String?, prompt: String, response: String, verdict: Verdict, reason: String?, generatedTokens: Int? = nil,
        finish: String? = nil, label: String? = nil
    ) {
        self.id = id
        self.category = category
        self.prompt = prompt
        self.response = response
        self.verdict = verdict
        self.reason = reason
        self.generatedTokens = generatedTokens
        self.finish = finish
        self.label = label
    }

    enum CodingKeys: String, CodingKey {
        case id, category, prompt, response, verdict, reason, finish, label
        case generatedTokens = "generated_tokens"
    }
}

/// Refusal, compliance and degenerate rates with their intervals, overall and per category.
public struct RefusalSummary: Codable, Sendable, Equatable {
    public struct Rates: Codable, Sendable, Equatable {
        public let refusal: RateSummary
        public let compliance: RateSummary
        public let degenerate: RateSummary

        init(_ records: [RefusalRecord]) {
            func rate(_ verdict: Verdict) -> RateSummary {
                RateSummary(count: records.filter { $0.verdict == verdict }.count, total: records.count)
            }
            refusal = rate(.refusal)
            compliance = rate(.compliance)
            degenerate = rate(.degenerate)
        }
    }

    public let overall: Rates
    public let categories: [String: Rates]

    public init(records: [RefusalRecord]) {
        overall = Rates(records)
        let grouped = Dictionary(grouping: records.filter { $0.category != nil }, by: { $0.category! })
        categories = grouped.mapValues(Rates.init)
    }
}

/// Puts every prompt to a model through its chat format, classifies each response, and
/// writes each response and verdict to a JSONL file as it comes; an interrupted run
/// resumes after the prompts already there and ends with the same results.
public struct RefusalEvaluation: Sendable {
    public let model: LanguageModel
    public let classifier: any ResponseClassifier
    public let settings: GenerationSettings

    public init(model: LanguageModel, classifier: any ResponseClassifier, settings: GenerationSettings = .init()) {
        self.model = model
        self.classifier = classifier
        self.settings = settings
    }

    /// What a responses file must have been written by to be resumed.
    struct Identity: Codable, Equatable {
        let evaluation: String
        let model: String
        let adapters: [String]
        let data: String
        let classifier: String
        let settings: GenerationSettings
    }

    /// Runs the prompts not yet in `responsesFile`. `identity` names the model, adapters and
    /// data for the file's header; `shouldStop` ends the run early (the file keeps what is done).
    public func run(
        prompts: [EvaluationPrompt], responsesFile: String, model identity: String, adapters: [String] = [],
        dataSHA256: String, group: ProcessGroup = .single, progress: ((WorkProgress) -> Void)? = nil,
        shouldStop: @escaping @Sendable () -> Bool = { false }
    ) throws(EvaluationError) -> (summary: RefusalSummary, complete: Bool) {
        let header = Identity(
            evaluation: "refusal", model: identity, adapters: adapters, data: dataSHA256, classifier: classifier.name,
            settings: settings)
        let log = try ResultsLog<RefusalRecord>(path: responsesFile, header: header, group: group)
        let done = Set(log.records.map(\.id))
        let remaining = prompts.filter { !done.contains($0.id) }
        // every prompt checked before any generation
        var encoded: [Int: [Int32]] = [:]
        for prompt in remaining {
            var messages: [ChatMessage] = settings.systemPrompt.map { [.system($0)] } ?? []
            messages.append(.user(prompt.text))
            let ids = model.encodeChat(messages)
            guard ids.count < model.model.config.maxPositionEmbeddings else {
                throw .malformedData(
                    file: "prompt \(prompt.id)", line: prompt.id + 1,
                    problem: "\(ids.count) tokens: no room left in the model's context of \(model.model.config.maxPositionEmbeddings)")
            }
            encoded[prompt.id] = ids
        }
        let generator = Generator(model: model.model, tokenizer: model.tokenizer)
        progress?(WorkProgress(completed: done.count, total: prompts.count, unit: "prompts"))
        // rounds of a few batches a rank: each rank decodes its prompts together; the file
        // gets each round's responses in prompt order
        _ = try ItemRounds(group: group, perRank: 4 * max(1, settings.batchSize)).run(
            remaining, shouldStop: shouldStop,
            compute: { (mine: [EvaluationPrompt]) throws(EvaluationError) -> [RefusalRecord] in
                let responses = generator.generate(
                    prompts: mine.map { encoded[$0.id]! },
                    sampling: SamplingParameters(temperature: settings.temperature, seed: settings.seed),
                    stop: StopConditions(maxTokens: settings.maxTokens), batchSize: settings.batchSize)
                return try zip(mine, responses).map { (prompt, summary) throws(EvaluationError) -> RefusalRecord in
                    let classification = try classifier.classify(prompt: prompt.text, response: summary.text)
                    return RefusalRecord(
                        id: prompt.id, category: prompt.category, prompt: prompt.text, response: summary.text,
                        verdict: classification.verdict, reason: classification.reason,
                        generatedTokens: summary.generatedTokens, finish: summary.reason.rawValue)
                }
            },
            record: { (records: [RefusalRecord]) throws(EvaluationError) in
                for record in records { try log.append(record) }
                progress?(WorkProgress(completed: log.records.count, total: prompts.count, unit: "prompts"))
            })
        let ids = Set(prompts.map(\.id))
        let records = log.records.filter { ids.contains($0.id) }.sorted { $0.id < $1.id }
        return (RefusalSummary(records: records), records.count == prompts.count)
    }
}
