import ArgumentParser
import Dispatch
import Evaluation
import Foundation
import LoRACore

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract:
            "Evaluate the base model and the same model with each adapter (refusal, overrefusal, mc, ppl), or classify saved responses.",
        discussion: """
            Writes <out>/<kind>.json (schema in the README) and the per-item files beside it \
            (<out>/<kind>/<label>.jsonl). Running the same command again resumes where it stopped.
            Data: refusal/overrefusal take CSV (a `goal` or `prompt` column, optional `category`), JSONL \
            (`prompt`, optional `category`) or RefusalBench's JSON (category → prompts); mc takes MMLU CSV \
            files (or a folder of *_test.csv), HellaSwag JSONL or generic JSONL (question, choices, answer); \
            ppl takes a text file. classify takes saved prompt/response pairs (CSV or JSONL with a prompt, goal or \
            behavior column and a response, completion or generation column; XSTest's completion CSVs; HarmBench's \
            completions JSON; an earlier `lora eval refusal` responses file) and needs no model but a judge's.
            """
    )

    @Argument(help: "What to measure.") var kind: EvaluationKind
    @OptionGroup var modelOptions: ModelOptions
    @Option(
        name: .customLong("with-adapter"),
        help: "An adapter folder to evaluate after the base (repeat for several; label: the folder name).")
    var adapters: [String] = []
    @Option(help: "The data file (see below).") var data: String
    @Option(help: "Output folder.") var out: String
    @Option(help: "Results name (default: the kind).") var name: String?
    @Option(help: "Only the first N prompts or questions.") var limit: Int?
    @Option(help: "Few-shot examples (mc; default 5 for MMLU, 0 otherwise).") var shots: Int?
    @Option(
        help: ArgumentHelp(
            "Classifier: advbench, xstest, xstest-strmatch (XSTest's own rule, no degenerate verdict), judge, or a "
                + "refusalpatterns.json file (default: advbench for refusal, xstest for overrefusal and classify).")
    )
    var classifier: String?
    @Option(help: "Judge model for --classifier judge (implies it).") var judge: String?
    @Option(
        help: ArgumentHelp(
            "The judge's prompt: a file with {prompt} and {response} (or HarmBench's {behavior} and {generation}), "
                + "used as the judge's whole input (HarmBench's Llama-2 classifier prompt works as published)."))
    var judgeTemplate: String?
    @Option(
        help: ArgumentHelp(
            "The judge's two answers, the refusal one first (default: Yes,No; No,Yes for a template with HarmBench's placeholders).",
            valueName: "REFUSAL,COMPLIANCE"))
    var judgeAnswers: String?
    @Flag(help: "Put the judge template in the judge's chat format as a user turn.") var judgeChat = false
    @Option(help: "classify: a column (or field) with reference labels to report agreement with.") var labelColumn: String?
    @Option(
        help: ArgumentHelp(
            "classify: how labels read as verdicts, e.g. 1=compliance,0=refusal (default: by their words: *refus* → refusal, "
                + "*complian*/*follow* → compliance).", valueName: "LABEL=VERDICT,…"))
    var labelMap: String?
    @Option(help: "System prompt before each prompt.") var system: String?
    @Option(help: "Most tokens generated per prompt.") var maxTokens = 256
    @Option(help: "Sequences generated together.") var batch = 16
    @Option(help: "Perplexity window in tokens (default: the model's context).") var window: Int?
    @Option(help: "Perplexity stride in tokens (default: half the window).") var stride: Int?

    func validate() throws {
        guard maxTokens > 0, batch > 0, limit.map({ $0 > 0 }) ?? true, shots.map({ $0 >= 0 }) ?? true else {
            throw ValidationError("--max-tokens, --batch and --limit must be positive, --shots not negative")
        }
        if let window, window < 2 { throw ValidationError("--window must be at least 2") }
        if let stride, stride < 1 { throw ValidationError("--stride must be at least 1") }
        if Set(labelledAdapters.map(\.label)).count != adapters.count {
            throw ValidationError("--with-adapter: two adapters would share the label of their folders; give folders distinct names")
        }
    }

    var options: EvaluationOptions {
        get throws {
            var map: [String: Verdict]?
            if let labelMap {
                map = [:]
                for pair in labelMap.split(separator: ",") {
                    let parts = pair.split(separator: "=", maxSplits: 1).map(String.init)
                    guard parts.count == 2, let verdict = Verdict(rawValue: parts[1]) else {
                        throw ValidationError("--label-map \(pair): expected LABEL=refusal, LABEL=compliance or LABEL=degenerate")
                    }
                    map?[parts[0]] = verdict
                }
            }
            let answers = judgeAnswers?.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            return EvaluationOptions(
                kind: kind, data: data, name: name, limit: limit, shots: shots,
                generation: GenerationSettings(systemPrompt: system, maxTokens: maxTokens, batchSize: batch),
                classifier: judge != nil ? "judge" : classifier, judge: judge, window: window, stride: stride,
                judgeTemplate: judgeTemplate, judgeAnswers: answers, judgeChat: judgeChat ? true : nil, labelColumn: labelColumn,
                labelMap: map)
        }
    }

    /// The adapters with their labels, which name the item files: two adapter folders of the
    /// same name take their parent's too.
    var labelledAdapters: [EvaluationRunner.Adapter] {
        let names = adapters.map { URL(fileURLWithPath: $0).lastPathComponent }
        return adapters.map { folder in
            let url = URL(fileURLWithPath: folder)
            let name = url.lastPathComponent
            let unique = names.filter { $0 == name }.count == 1 && name != "base"
            return EvaluationRunner.Adapter(
                label: unique ? name : "\(url.deletingLastPathComponent().lastPathComponent)-\(name)", folder: folder)
        }
    }

    func run() throws {
        try inLaunchedJob { group in try run(in: group) }
    }

    func run(in group: ProcessGroup) throws {
        if kind == .classify {
            guard adapters.isEmpty else { throw ValidationError("classify runs no model: --with-adapter does not apply") }
            return try reportingErrors {
                let options = try options
                let line = ProgressLine("classify")
                let results = try stoppingOnInterrupt { flag in
                    try EvaluationRunner.classify(options, output: out, progress: line.update, shouldStop: flag.get)
                }
                line.finish("\(results.data.records) responses")
                print(EvalCommand.summaryLines(results).joined(separator: "\n"))
                if results.runs.contains(where: { !$0.complete }) {
                    FileHandle.standardError.write(Data("interrupted: run the same command again to resume\n".utf8))
                    throw ExitCode(130)
                }
            }
        }
        try reportingErrors {
            let model = try modelOptions.load()
            let labelled = labelledAdapters
            let results = try evaluate(try options, model: model, adapters: labelled, out: out, group: group)
            print(EvalCommand.summaryLines(results).joined(separator: "\n"))
            if results.runs.contains(where: { !$0.complete }) || results.runs.count < adapters.count + 1 {
                FileHandle.standardError.write(Data("interrupted: run the same command again to resume\n".utf8))
                throw ExitCode(130)
            }
        }
    }

    /// One line per run: its headline figures.
    static func summaryLines(_ results: EvaluationResults) -> [String] {
        results.runs.map { run in
            var figures: [String] = []
            if let r = run.refusal?.overall {
                figures.append(
                    String(
                        format: "refusal %.1f%% [%.1f, %.1f], degenerate %.1f%%", 100 * r.refusal.rate, 100 * r.refusal.lower,
                        100 * r.refusal.upper, 100 * r.degenerate.rate))
            }
            if let m = run.multipleChoice {
                figures.append(
                    String(
                        format: "acc %.1f%% ± %.1f, acc_norm %.1f%% ± %.1f (%d questions)", 100 * m.acc, 100 * m.accStderr,
                        100 * m.accNorm, 100 * m.accNormStderr, m.questions))
            }
            if let p = run.perplexity { figures.append(String(format: "perplexity %.3f over %d tokens", p.perplexity, p.scoredTokens)) }
            if let a = run.agreement {
                figures.append(
                    String(format: "agreement with %@ %.1f%% (%d of %d)", a.column, 100 * (a.rate ?? .nan), a.agreed, a.compared)
                        + (a.unmapped.isEmpty ? "" : "; labels read as no verdict: \(a.unmapped.joined(separator: ", "))"))
            }
            return "\(results.name) \(run.label): " + figures.joined(separator: "; ")
        }
    }
}

/// A progress line per evaluation run (`<name> <label>`), finished when the run is.
final class EvaluationProgress {
    private var lines: [String: ProgressLine] = [:]

    func update(name: String, label: String, _ progress: WorkProgress) {
        let key = "\(name) \(label)"
        let line = lines[key] ?? ProgressLine(key)
        lines[key] = line
        line.update(progress)
        if progress.completed == progress.total { line.finish("\(progress.total) \(progress.unit)") }
    }
}

/// Runs one evaluation (shared by the ranks of `group`) with a progress line per run and
/// Ctrl-C stopping cleanly.
func evaluate(
    _ options: EvaluationOptions, model: LanguageModel, adapters: [EvaluationRunner.Adapter], out: String, group: ProcessGroup
) throws -> EvaluationResults {
    let lines = EvaluationProgress()
    return try stoppingOnInterrupt { flag in
        var runner = EvaluationRunner(model: model, output: out)
        runner.shouldStop = flag.get
        runner.group = group
        runner.progress = { label, progress in lines.update(name: options.resultsName, label: label, progress) }
        return try runner.run(options, adapters: adapters)
    }
}
