import Evaluation
import Foundation
import LoRACore
import Testing

#if canImport(FoundationXML)
    import FoundationXML
#endif

struct ReportTests {
    static func results(kind: EvaluationKind, name: String, runs: [EvaluationResults.Run], format: String = "generic") -> EvaluationResults
    {
        EvaluationResults(
            schema: EvaluationResults.currentSchema, libraryVersion: SwiftLoRA.version, name: name,
            options: EvaluationOptions(kind: kind, data: "/data/\(name).jsonl"),
            data: .init(path: "/data/\(name).jsonl", sha256: "00", format: format, records: 40),
            model: .init(path: "/models/m.gguf", format: "GGUF v3", bytes: 1, parameters: 2, precision: "int8"),
            classifier: nil, runs: runs)
    }

    static func refusalRun(_ label: String, refusals: Int, degenerate: Int, step: Int?) -> EvaluationResults.Run {
        let records = (0..<36).map { i in
            RefusalRecordStub.make(id: i, verdict: i < refusals ? .refusal : i < refusals + degenerate ? .degenerate : .compliance)
        }
        return .init(
            label: label, adapter: step.map { .init(path: "/out/train/checkpoint-\($0)", sha256: "ab", rank: 8, alpha: 16, step: $0) },
            complete: true, items: "overrefusal/\(label).jsonl", refusal: RefusalSummary(records: records), multipleChoice: nil,
            perplexity: nil)
    }

    /// A folder with two results files and a training log: the Markdown table carries the
    /// figures and deltas, the HTML page parses as XML and holds the charts, the JSON round-trips.
    @Test func reportFromAFolder() throws {
        let scratch = Scratch()
        let overrefusal = Self.results(
            kind: .overrefusal, name: "overrefusal",
            runs: [
                Self.refusalRun("base", refusals: 9, degenerate: 0, step: nil),
                Self.refusalRun("checkpoint-10", refusals: 4, degenerate: 1, step: 10),
                Self.refusalRun("adapter", refusals: 2, degenerate: 3, step: 20),
            ])
        try overrefusal.write(to: "\(scratch.folder)/overrefusal.json")
        let mc = Self.results(
            kind: .mc, name: "mc",
            runs: [
                .init(
                    label: "base", adapter: nil, complete: true, items: "mc/base.jsonl", refusal: nil,
                    multipleChoice: MultipleChoiceSummary(records: (0..<40).map { .stub(id: $0, acc: $0 < 22, accNorm: $0 < 19) }),
                    perplexity: nil),
                .init(
                    label: "adapter", adapter: nil, complete: false, items: "mc/adapter.jsonl", refusal: nil,
                    multipleChoice: MultipleChoiceSummary(records: (0..<40).map { .stub(id: $0, acc: $0 < 20, accNorm: $0 < 21) }),
                    perplexity: nil),
            ])
        try mc.write(to: "\(scratch.folder)/mc.json")
        _ = scratch.file("config.json", #"{"model": "not results"}"#)
        _ = scratch.file(
            "train/train_log.jsonl",
            (1...20).map { step in
                #"{"elapsed":1,"grad_norm":1,"loss":\#(3.0 / Double(step)),"lr":0.001,"step":\#(step),"tokens":100,"#
                    + #""tokens_per_second":50\#(step % 10 == 0 ? #","eval_loss":0.5"# : "")}"#
            }.joined(separator: "\n") + "\n")

        let report = try ExperimentReport.load(folder: scratch.folder)
        #expect(report.evaluations.map(\.name) == ["mc", "overrefusal"] && report.training?.count == 20)
        try report.write(to: scratch.folder)
        let markdown = try String(contentsOfFile: "\(scratch.folder)/report.md", encoding: .utf8)
        #expect(markdown.contains("| base | 25.0% [13.8, 41.1] | 0.0% [0.0, 9.6] | 75.0% [58.9, 86.2] |  |"))
        #expect(markdown.contains("| adapter | 5.6% [1.5, 18.1] | 8.3% [2.9, 21.8] | 86.1% [71.3, 93.9] | -19.4 pp |"))
        #expect(markdown.contains("| adapter (incomplete) | 50.0% ± 8.0 | 52.5% ± 8.0 | -5.0 pp | +5.0 pp |"))
        #expect(markdown.contains("20 steps: loss 3.0000 → 0.1500, last held-out loss 0.5000."))

        let html = try Data(contentsOf: URL(fileURLWithPath: "\(scratch.folder)/report.html"))
        let parser = XMLParser(data: html)
        let counter = ElementCounter()
        parser.delegate = counter
        #expect(parser.parse(), "report.html is not well-formed: \(String(describing: parser.parserError))")
        #expect(counter.counts["svg"] == 4) // two comparisons, overrefusal by checkpoint, loss curves
        #expect(counter.counts["table"] == 2 && (counter.counts["polyline"] ?? 0) == 3)
        #expect(!String(decoding: html, as: UTF8.self).contains("<script") && !String(decoding: html, as: UTF8.self).contains("src="))

        let json = try JSONDecoder().decode(
            ExperimentReport.self, from: Data(contentsOf: URL(fileURLWithPath: "\(scratch.folder)/report.json")))
        #expect(json.evaluations == report.evaluations && json.training == report.training)
    }

    @Test func aFolderWithoutResultsIsAnError() {
        let scratch = Scratch()
        #expect(throws: EvaluationError.emptyDataset(file: scratch.folder)) { try ExperimentReport.load(folder: scratch.folder) }
        // a file that claims the results schema but is not results: an error naming it
        let broken = scratch.file("x.json", #"{"schema": "swift-lora/evaluation/1", "name": 3}"#)
        #expect { try ExperimentReport.load(folder: scratch.folder) } throws: { error in
            guard case .malformedData(let file, 1, let problem) = error as? EvaluationError else { return false }
            return file == broken && problem.hasPrefix("not a swift-lora results file")
        }
        // a training log with a bad line in the middle: an error naming the file and line
        try? FileManager.default.removeItem(atPath: broken)
        let log = scratch.file(
            "train_log.jsonl",
            #"{"elapsed":1,"grad_norm":1,"loss":2,"lr":0.1,"step":1,"tokens":5,"tokens_per_second":5}"# + "\nnot json\n{}\n")
        #expect { try ExperimentReport.load(folder: scratch.folder) } throws: { error in
            guard case .model(.malformedRecord(let file, let line, _)) = error as? EvaluationError else { return false }
            return file == log && line == 2
        }
    }
}

final class ElementCounter: NSObject, XMLParserDelegate {
    var counts: [String: Int] = [:]
    func parser(
        _ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String]
    ) {
        counts[name, default: 0] += 1
    }
}

enum RefusalRecordStub {
    static func make(id: Int, verdict: Verdict) -> RefusalRecord {
        let json =
            #"{"id":\#(id),"prompt":"p","response":"r","verdict":"\#(verdict.rawValue)","generated_tokens":1,"#
            + #""finish":"stopToken","category":"c\#(id % 2)"}"#
        return try! JSONDecoder().decode(RefusalRecord.self, from: Data(json.utf8))
    }
}

extension MultipleChoiceRecord {
    static func stub(id: Int, acc: Bool, accNorm: Bool) -> MultipleChoiceRecord {
        let json = #"{"id":\#(id),"gold":0,"log_likelihoods":[-1,-2],"acc":\#(acc),"acc_norm":\#(accNorm)}"#
        return try! JSONDecoder().decode(MultipleChoiceRecord.self, from: Data(json.utf8))
    }
}
