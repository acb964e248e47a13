import Foundation
import LoRACore

/// Runs one evaluation on a loaded model: first the base, then the same model with each
/// adapter, writing per-item files as it goes and the results file after each run. Data,
/// classifier and judge problems surface before any model time is spent; a rerun into the
/// same folder resumes.
public struct EvaluationRunner {
    public let model: LanguageModel
    /// The folder results go to.
    public let output: String
    /// Progress of each run, by label ("base", the adapter's label).
    public var progress: ((String, WorkProgress) -> Void)?
    /// Checked between items: true stops the evaluation (what is done stays on disk).
    public var shouldStop: @Sendable () -> Bool = { false }
    /// The processes sharing the work: items are dealt out across the ranks and merged in
    /// order; rank 0 writes every file, the same bytes as one process would.
    public var group: ProcessGroup = .single

    public init(model: LanguageModel, output: String) {
        self.model = model
        self.output = output
    }

    /// An adapter to evaluate: its label in results, its PEFT folder, and the training step
    /// it was saved at (for charts along a fine-tune; a `checkpoint-N` folder gives N).
    public struct Adapter: Sendable {
        public let label: String
        public let folder: String
        public let step: Int?

        public init(label: String? = nil, folder: String, step: Int? = nil) {
            let name = URL(fileURLWithPath: folder).lastPathComponent
            self.label = label ?? name
            self.folder = folder
            self.step = step ?? CheckpointFolder.step(ofName: name)
        }
    }

    /// Evaluates the base model and then each adapter. The adapters are attached one at a
    /// time and detached afterwards.
    public func run(_ options: EvaluationOptions, adapters: [Adapter] = []) throws(EvaluationError) -> EvaluationResults {
        let name = options.resultsName
        var peft: [PEFTAdapter] = []
        for adapter in adapters {
            // a wrong adapter (another model's shapes or names) fails here, not after the base run
            do {
                let loaded = try PEFTAdapter(folder: adapter.folder)
                try model.model.attach(loaded)
                model.model.detachAdapters()
                peft.append(loaded)
            } catch {
                model.model.detachAdapters()
                throw .model(error)
            }
        }
        let work = try Work(options, model: model)
        let summary = model.summary
        var results = EvaluationResults(
            schema: EvaluationResults.currentSchema, libraryVersion: SwiftLoRA.version, name: name, options: options,
            data: .init(path: options.data, sha256: work.sha256, format: work.format, records: work.count),
            model: .init(
                path: summary.path, format: summary.format, bytes: summary.fileBytes, parameters: summary.parameters,
                precision: summary.precision.rawValue),
            classifier: work.classifier?.name, runs: [])
        let resultsPath = "\(output)/\(name).json"
        let runs: [(label: String, adapter: PEFTAdapter?, step: Int?)] =
            [("base", nil, nil)] + zip(adapters, peft).map { ($0.label, $1, $0.step) }
        for (label, adapter, step) in runs {
            model.model.detachAdapters()
            var identity: EvaluationResults.AdapterIdentity?
            if let adapter {
                do { try model.model.attach(adapter) } catch { throw .model(error) }
                identity = .init(
                    path: adapter.folder, sha256: try digest(ofFile: "\(adapter.folder)/adapter_model.safetensors"),
                    rank: adapter.rank, alpha: adapter.alpha, step: step)
            }
            defer { model.model.detachAdapters() }
            let run = try work.run(
                label: label, adapter: identity, model: model, modelIdentity: "\(summary.path) (\(summary.fileBytes) bytes)",
                folder: "\(output)/\(name)", group: group, progress: progress.map { report in { report(label, $0) } },
                shouldStop: shouldStop)
            results.runs.append(run)
            if group.isLeader { try results.write(to: resultsPath) }
            if !run.complete { break }
        }
        return results
    }

    /// The classifier an evaluation names: `advbench` (default for refusal), `xstest`
    /// (default for over-refusal and classify), `xstest-strmatch` (XSTest's own rule),
    /// `judge` (with `judge`, and `judgeTemplate` if given), or a `refusalpatterns.json` file.
    public static func classifier(_ options: EvaluationOptions) throws(EvaluationError) -> any ResponseClassifier {
        let choice = options.classifier ?? (options.kind == .refusal ? "advbench" : "xstest")
        if choice != "judge" && (options.judgeTemplate != nil || options.judgeAnswers != nil) {
            throw .invalidOption(option: "judgeTemplate", problem: "a judge template needs the judge classifier")
        }
        switch choice {
        case "advbench": return RefusalPhrases()
        case "xstest": return RefusalPhrases.xsTest
        case "xstest-strmatch": return RefusalPhrases.xsTestStringMatch
        case "judge":
            guard let judge = options.judge else {
                throw .invalidOption(option: "judge", problem: "the judge classifier needs a judge model")
            }
            var answers: (refusal: String, compliance: String)?
            if let given = options.judgeAnswers {
                guard given.count == 2 else {
                    throw .invalidOption(option: "judgeAnswers", problem: "two answers, the refusal one first; got \(given.count)")
                }
                answers = (given[0], given[1])
            }
            let template: JudgeTemplate
            if let file = options.judgeTemplate {
                template = try JudgeTemplate(file: file, answers: answers, chat: options.judgeChat ?? false)
            } else if let answers {
                template = try JudgeTemplate(
                    text: JudgeTemplate.builtInQuestion, refusalAnswer: answers.refusal, complianceAnswer: answers.compliance,
                    chat: options.judgeChat ?? true, name: "built-in")
            } else {
                template = .builtIn
            }
            let judgeModel: LanguageModel
            do { judgeModel = try LanguageModel.load(path: judge) } catch { throw .model(error) }
            return try RefusalJudge(judge: judgeModel, template: template)
        default: return try RefusalPhrases(patternsFile: choice)
        }
    }

    /// `classify`: the saved responses of `options.data` classified again, into
    /// `<output>/<name>/responses.jsonl` (one verdict line per response, in input order)
    /// and `<output>/<name>.json`; a rerun resumes.
    public static func classify(
        _ options: EvaluationOptions, output: String, progress: ((WorkProgress) -> Void)? = nil,
        shouldStop: @escaping @Sendable () -> Bool = { false }
    ) throws(EvaluationError) -> EvaluationResults {
        let classifier = try classifier(options)
        var responses = try ResponseSet.load(options.data, labelColumn: options.labelColumn)
        if let limit = options.limit { responses = Array(responses.prefix(limit)) }
        let sha256 = try digest(ofFile: options.data)
        let name = options.resultsName
        let (summary, agreement, complete) = try ResponseClassification(classifier: classifier).run(
            responses: responses, verdictsFile: "\(output)/\(name)/responses.jsonl", dataSHA256: sha256,
            labelColumn: options.labelColumn, labelMap: options.labelMap, progress: progress, shouldStop: shouldStop)
        let results = EvaluationResults(
            name: name, options: options,
            data: .init(
                path: options.data, sha256: sha256, format: URL(fileURLWithPath: options.data).pathExtension.lowercased(),
                records: responses.count),
            model: nil, classifier: classifier.name,
            runs: [
                .init(
                    label: "responses", adapter: nil, complete: complete, items: "\(name)/responses.jsonl", refusal: summary,
                    multipleChoice: nil, perplexity: nil, agreement: agreement)
            ])
        try results.write(to: "\(output)/\(name).json")
        return results
    }

    /// The loaded data and classifier of one evaluation.
    struct Work {
        let options: EvaluationOptions
        let sha256: String
        let format: String
        let prompts: [EvaluationPrompt]
        let items: [MultipleChoiceItem]
        let tokens: [Int32]
        let classifier: (any ResponseClassifier)?

        var count: Int { options.kind == .mc ? items.count : options.kind == .ppl ? tokens.count : prompts.count }

        init(_ options: EvaluationOptions, model: LanguageModel) throws(EvaluationError) {
            self.options = options
            sha256 = TextFile.isFolder(options.data) ? try Self.folderDigest(options.data) : try digest(ofFile: options.data)
            var prompts: [EvaluationPrompt] = []
            var items: [MultipleChoiceItem] = []
            var tokens: [Int32] = []
            var classifier: (any ResponseClassifier)?
            switch options.kind {
            case .refusal, .overrefusal:
                prompts = try PromptSet.load(options.data)
                format = URL(fileURLWithPath: options.data).pathExtension.lowercased()
                classifier = try EvaluationRunner.classifier(options)
            case .mc:
                let loaded = try MultipleChoiceSet.load(options.data, shots: options.shots)
                items = loaded.items
                format = loaded.format.rawValue
            case .ppl:
                tokens = model.tokenizer.encode(try TextFile.read(options.data), parseSpecial: false, addBOS: nil)
                guard tokens.count >= 2 else { throw .emptyDataset(file: options.data) }
                format = "text"
            case .classify:
                throw .invalidOption(option: "kind", problem: "classify runs no model: use EvaluationRunner.classify")
            }
            if let limit = options.limit {
                prompts = Array(prompts.prefix(limit))
                items = Array(items.prefix(limit))
            }
            self.prompts = prompts
            self.items = items
            self.tokens = tokens
            self.classifier = classifier
        }

        /// A folder's identity: the digest of its files' names and digests, in sorted order.
        static func folderDigest(_ path: String) throws(EvaluationError) -> String {
            let files = ((try? FileManager.default.subpathsOfDirectory(atPath: path)) ?? []).sorted()
            var listing = ""
            for file in files where !TextFile.isFolder("\(path)/\(file)") {
                listing += "\(file) \(try digest(ofFile: "\(path)/\(file)"))\n"
            }
            return SHA256.hex(of: Array(listing.utf8))
        }

        func run(
            label: String, adapter: EvaluationResults.AdapterIdentity?, model: LanguageModel, modelIdentity: String, folder: String,
            group: ProcessGroup, progress: ((WorkProgress) -> Void)?, shouldStop: @escaping @Sendable () -> Bool
        ) throws(EvaluationError) -> EvaluationResults.Run {
            let adapters = adapter.map { ["\($0.path) \($0.sha256)"] } ?? []
            switch options.kind {
            case .refusal, .overrefusal:
                let file = "\(label).jsonl"
                let evaluation = RefusalEvaluation(model: model, classifier: classifier!, settings: options.generation)
                let (summary, complete) = try evaluation.run(
                    prompts: prompts, responsesFile: "\(folder)/\(file)", model: modelIdentity,
                    adapters: adapters, dataSHA256: sha256, group: group, progress: progress, shouldStop: shouldStop)
                return .init(
                    label: label, adapter: adapter, complete: complete, items: "\(URL(fileURLWithPath: folder).lastPathComponent)/\(file)",
                    refusal: summary, multipleChoice: nil, perplexity: nil)
            case .mc:
                let file = "\(label).jsonl"
                let (summary, complete) = try MultipleChoiceEvaluation(model: model).run(
                    items: items, itemsFile: "\(folder)/\(file)", model: modelIdentity, adapters: adapters, dataSHA256: sha256,
                    shots: options.shots ?? -1, group: group, progress: progress, shouldStop: shouldStop)
                return .init(
                    label: label, adapter: adapter, complete: complete, items: "\(URL(fileURLWithPath: folder).lastPathComponent)/\(file)",
                    refusal: nil, multipleChoice: summary, perplexity: nil)
            case .classify:
                preconditionFailure("classify runs through EvaluationRunner.classify")
            case .ppl:
                let file = "\(label).logprobs.json"
                let (result, logProbabilities) = try PerplexityEvaluation(model: model, window: options.window, stride: options.stride)
                    .run(tokens: tokens, group: group, progress: progress)
                struct TokenLogProbabilities: Encodable {
                    let ids: [Int32]
                    let logprobs: [Float]
                }
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                if group.isLeader {
                    do {
                        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
                        try AtomicFile.write(
                            try encoder.encode(TokenLogProbabilities(ids: tokens, logprobs: logProbabilities)), to: "\(folder)/\(file)")
                    } catch {
                        throw .unreadableFile(file: "\(folder)/\(file)", reason: "cannot write: \(error)")
                    }
                }
                return .init(
                    label: label, adapter: adapter, complete: true, items: "\(URL(fileURLWithPath: folder).lastPathComponent)/\(file)",
                    refusal: nil, multipleChoice: nil, perplexity: result)
            }
        }
    }
}

/// A file's SHA-256, its failure an evaluation's error.
func digest(ofFile path: String) throws(EvaluationError) -> String {
    do {
        return try SHA256.hex(ofFile: path)
    } catch {
        guard case .unreadableFile(_, let reason) = error else { throw .model(error) }
        throw .unreadableFile(file: path, reason: reason)
    }
}
