import Foundation
import LoRACore

/// Everything in an experiment folder put side by side: each results file (`*.json` written
/// by `lora eval` or `lora experiment`) and the trainer's log, rendered as `report.json`,
/// `report.md` (tables) and `report.html` (tables and SVG charts in one page).
public struct ExperimentReport: Codable, Sendable {
    public static let currentSchema = "swift-lora/report/1"

    public let schema: String
    public let libraryVersion: String
    public let evaluations: [EvaluationResults]
    /// The trainer's steps, when the folder holds a fine-tune (`train/train_log.jsonl` or
    /// `train_log.jsonl`).
    public let training: [TrainingStepReport]?

    enum CodingKeys: String, CodingKey {
        case schema, evaluations, training
        case libraryVersion = "library_version"
    }

    public init(evaluations: [EvaluationResults], training: [TrainingStepReport]?) {
        schema = Self.currentSchema
        libraryVersion = SwiftLoRA.version
        self.evaluations = evaluations
        self.training = training
    }

    /// Reads every results file and the training log in `folder`.
    public static func load(folder: String) throws(EvaluationError) -> ExperimentReport {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder) else {
            throw .unreadableFile(file: folder, reason: "not a readable folder")
        }
        var evaluations: [EvaluationResults] = []
        for name in names.sorted() where name.hasSuffix(".json") && !name.hasPrefix("report") {
            let path = "\(folder)/\(name)"
            // other JSON files (an experiment's config) are not results: skip what lacks the schema
            guard let data = FileManager.default.contents(atPath: path),
                let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                object["schema"] as? String == EvaluationResults.currentSchema
            else { continue }
            evaluations.append(try EvaluationResults.load(path))
        }
        var training: [TrainingStepReport]?
        let logs = ["\(folder)/train/\(TrainingLog.fileName)", "\(folder)/\(TrainingLog.fileName)"]
        if let log = logs.first(where: { FileManager.default.fileExists(atPath: $0) }) {
            do { training = try TrainingLog.read(log) } catch { throw .model(error) }
        }
        guard !evaluations.isEmpty || training != nil else {
            throw .emptyDataset(file: folder)
        }
        return ExperimentReport(evaluations: evaluations, training: training)
    }

    /// Writes report.json, report.md and report.html into `folder`, each atomically.
    public func write(to folder: String) throws(EvaluationError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        do {
            try AtomicFile.write(try encoder.encode(self), to: "\(folder)/report.json")
            try AtomicFile.write(Data(markdown().utf8), to: "\(folder)/report.md")
            try AtomicFile.write(Data(html().utf8), to: "\(folder)/report.html")
        } catch {
            throw .unreadableFile(file: folder, reason: "cannot write the report: \(error)")
        }
    }

    // MARK: Tables

    /// One table per evaluation: a row per run, its figures and the change from the base.
    struct Table {
        let title: String
        let columns: [String]
        let rows: [[String]]
    }

    static func percent(_ rate: RateSummary) -> String {
        String(format: "%.1f%% [%.1f, %.1f]", 100 * rate.rate, 100 * rate.lower, 100 * rate.upper)
    }

    static func delta(_ value: Double, _ base: Double?, scale: Double = 100, unit: String = " pp") -> String {
        guard let base else { return "" }
        return String(format: "%+.1f%@", scale * (value - base), unit)
    }

    func tables() -> [Table] { evaluations.flatMap(Self.tables) }

    /// An evaluation's tables: its runs side by side, and for a classification with labels
    /// the verdicts against them.
    static func tables(_ results: EvaluationResults) -> [Table] {
        let base = results.runs.first
        let title =
            "\(results.name) (\(results.options.kind.rawValue), \(results.data.format), \(results.data.records) "
            + "\(results.options.kind == .ppl ? "tokens" : "items"), \(URL(fileURLWithPath: results.data.path).lastPathComponent))"
        func label(_ run: EvaluationResults.Run) -> String { run.label + (run.complete ? "" : " (incomplete)") }
        switch results.options.kind {
        case .refusal, .overrefusal, .classify:
            let baseRate = base?.refusal?.overall.refusal.rate
            return [
                Table(
                    title: title, columns: ["model", "refusal", "degenerate", "compliance", "Δ refusal"],
                    rows: results.runs.map { run in
                        guard let r = run.refusal?.overall else { return [label(run), "", "", "", ""] }
                        return [
                            label(run), Self.percent(r.refusal), Self.percent(r.degenerate), Self.percent(r.compliance),
                            run.label == base?.label ? "" : Self.delta(r.refusal.rate, baseRate),
                        ]
                    })
            ] + (results.runs.compactMap(\.agreement).first.map { [Self.agreementTable(results.name, $0)] } ?? [])
        case .mc:
            let baseAcc = base?.multipleChoice?.acc
            let baseNorm = base?.multipleChoice?.accNorm
            return [
                Table(
                    title: title, columns: ["model", "acc", "acc_norm", "Δ acc", "Δ acc_norm"],
                    rows: results.runs.map { run in
                        guard let m = run.multipleChoice else { return [label(run), "", "", "", ""] }
                        let first = run.label == base?.label
                        return [
                            label(run), String(format: "%.1f%% ± %.1f", 100 * m.acc, 100 * m.accStderr),
                            String(format: "%.1f%% ± %.1f", 100 * m.accNorm, 100 * m.accNormStderr),
                            first ? "" : Self.delta(m.acc, baseAcc), first ? "" : Self.delta(m.accNorm, baseNorm),
                        ]
                    })
            ]
        case .ppl:
            let basePPL = base?.perplexity?.perplexity
            return [
                Table(
                    title: title, columns: ["model", "perplexity", "tokens scored", "Δ perplexity"],
                    rows: results.runs.map { run in
                        guard let p = run.perplexity else { return [label(run), "", "", ""] }
                        return [
                            label(run), String(format: "%.3f", p.perplexity), "\(p.scoredTokens)",
                            run.label == base?.label ? "" : Self.delta(p.perplexity, basePPL, scale: 1, unit: ""),
                        ]
                    })
            ]
        }
    }

    /// A classification's verdicts against its reference labels: rows per label, a column
    /// per verdict, and the agreement over the labels that read as verdicts.
    static func agreementTable(_ name: String, _ agreement: LabelAgreement) -> Table {
        let verdicts = Verdict.allCases.map(\.rawValue)
        var rows = agreement.confusion.keys.sorted().map { label in
            [label] + verdicts.map { "\(agreement.confusion[label]?[$0] ?? 0)" }
        }
        rows.append(
            [
                "agreement", agreement.rate.map { String(format: "%.1f%%", 100 * $0) } ?? "–",
                "\(agreement.agreed) of \(agreement.compared)", "",
            ])
        return Table(title: "\(name): verdicts against `\(agreement.column)`", columns: [agreement.column] + verdicts, rows: rows)
    }

    public func markdown() -> String {
        var text =
            "# swift-lora report\n\nswift-lora \(libraryVersion). Rates with 95% Wilson intervals; accuracies ± standard error; "
            + "Δ against the base model (pp: percentage points).\n"
        if let model = evaluations.first?.model {
            text += "\nModel: `\(model.path)` (\(model.format), \(model.precision) weights, \(model.parameters) parameters).\n"
        }
        for table in tables() {
            text +=
                "\n## \(table.title)\n\n| " + table.columns.joined(separator: " | ") + " |\n|"
                + table.columns.map { _ in " --- |" }.joined() + "\n"
            for row in table.rows {
                text += "| " + row.map { $0.replacingOccurrences(of: "|", with: "\\|") }.joined(separator: " | ") + " |\n"
            }
        }
        if let training, let first = training.first, let last = training.last {
            text +=
                "\n## Training\n\n\(last.step) steps: "
                + "loss \(String(format: "%.4f", first.loss)) → \(String(format: "%.4f", last.loss))"
            if let eval = training.last(where: { $0.evalLoss != nil })?.evalLoss {
                text += ", last held-out loss \(String(format: "%.4f", eval))"
            }
            text += ".\n"
        }
        return text
    }

    // MARK: Page

    /// The headline figure of a run with its interval: refusal rate, acc_norm (acc for MMLU,
    /// whose one-letter choices make acc_norm the same), perplexity.
    static func headline(_ results: EvaluationResults, _ run: EvaluationResults.Run) -> (value: Double, lower: Double?, upper: Double?)? {
        if let rate = run.refusal?.overall.refusal { return (100 * rate.rate, 100 * rate.lower, 100 * rate.upper) }
        if let m = run.multipleChoice {
            let (value, stderr) = results.data.format == "mmlu" ? (m.acc, m.accStderr) : (m.accNorm, m.accNormStderr)
            return (100 * value, 100 * max(value - 1.96 * stderr, 0), 100 * min(value + 1.96 * stderr, 1))
        }
        if let p = run.perplexity { return (p.perplexity, nil, nil) }
        return nil
    }

    static func headlineUnit(_ results: EvaluationResults) -> String {
        switch results.options.kind {
        case .refusal, .overrefusal, .classify: "refusal rate, %"
        case .mc: results.data.format == "mmlu" ? "acc, %" : "acc_norm, %"
        case .ppl: "perplexity"
        }
    }

    public func html() -> String {
        var body =
            "<h1>swift-lora report</h1>\n<p>swift-lora \(SVGChart.escaped(libraryVersion)). Rates with 95% Wilson intervals; "
            + "accuracies ± standard error (bars: 95% intervals); Δ against the base model.</p>\n"
        if let model = evaluations.first?.model {
            body +=
                "<p>Model: <code>\(SVGChart.escaped(model.path))</code> "
                + "(\(SVGChart.escaped(model.format)), \(model.precision) weights).</p>\n"
        }
        for results in evaluations {
            for table in Self.tables(results) {
                body +=
                    "<h2>\(SVGChart.escaped(table.title))</h2>\n<table>\n<tr>"
                    + table.columns.map { "<th>\(SVGChart.escaped($0))</th>" }.joined() + "</tr>\n"
                for row in table.rows { body += "<tr>" + row.map { "<td>\(SVGChart.escaped($0))</td>" }.joined() + "</tr>\n" }
                body += "</table>\n"
            }
            let entries = results.runs.compactMap { run in Self.headline(results, run).map { (run.label, $0.value, $0.lower, $0.upper) } }
            body +=
                "<figure>"
                + SVGChart.bars(title: "\(results.name): \(Self.headlineUnit(results))", unit: Self.headlineUnit(results), entries: entries)
                + "</figure>\n"
            // the metric along the fine-tune: the base at step 0, then checkpoints by step
            let steps = results.runs.enumerated().compactMap { index, run in
                (index == 0 ? 0 : run.adapter?.step).flatMap { step in Self.headline(results, run).map { (Double(step), $0.value) } }
            }
            if steps.count >= 2 {
                body +=
                    "<figure>"
                    + SVGChart.lines(
                        title: "\(results.name) by checkpoint", xLabel: "step", yLabel: Self.headlineUnit(results),
                        series: [(results.name, steps.sorted { $0.0 < $1.0 })]) + "</figure>\n"
            }
        }
        if let training, !training.isEmpty {
            body += "<h2>Training</h2>\n"
            let heldOut = training.compactMap { step in step.evalLoss.map { (Double(step.step), $0) } }
            body +=
                "<figure>"
                + SVGChart.lines(
                    title: "Loss", xLabel: "step", yLabel: "loss",
                    series: [("training", training.map { (Double($0.step), $0.loss) }), ("held out", heldOut)]) + "</figure>\n"
        }
        return """
            <!DOCTYPE html>
            <html xmlns="http://www.w3.org/1999/xhtml" lang="en">
            <head>
            <meta charset="utf-8"/>
            <title>swift-lora report</title>
            <style>
            body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
            table { border-collapse: collapse; margin: 1rem 0; }
            th, td { border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: right; }
            th:first-child, td:first-child { text-align: left; }
            figure { margin: 1rem 0; }
            </style>
            </head>
            <body>
            \(body)</body>
            </html>

            """
    }
}
