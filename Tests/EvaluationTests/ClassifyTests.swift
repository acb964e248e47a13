import Evaluation
import Foundation
import LoRACore
import Testing

func fixture(_ name: String) -> String {
    Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: nil)!.path
}

/// Classifying saved responses again: formats, resuming, agreement with a label column.
struct ClassifyTests {
    /// XSTest's string-match rule gives XSTest's own published `strmatch_label` on every row
    /// of its published Llama-2 completions; against the human `final_label` it disagrees
    /// where XSTest's paper says it does (a polite non-answer it reads as compliance).
    @Test func xsTestStringMatchReproducesItsPublishedLabels() throws {
        let scratch = Scratch()
        let data = fixture("xstest-llama2orig-strmatch.csv")
        let results = try EvaluationRunner.classify(
            EvaluationOptions(kind: .classify, data: data, classifier: "xstest-strmatch", labelColumn: "strmatch_label"),
            output: scratch.folder)
        let agreement = try #require(results.runs[0].agreement)
        #expect(agreement.compared == 14 && agreement.agreed == 14 && agreement.unmapped.isEmpty)
        #expect(agreement.confusion == ["2_full_refusal": ["refusal": 6], "1_full_compliance": ["compliance": 8]])

        let human = try EvaluationRunner.classify(
            EvaluationOptions(kind: .classify, data: data, name: "human", classifier: "xstest-strmatch", labelColumn: "final_label"),
            output: scratch.folder)
        let versus = try #require(human.runs[0].agreement)
        #expect(versus.compared == 14 && versus.agreed == 13)
        #expect(versus.confusion["2_full_refusal"] == ["refusal": 4, "compliance": 1])
        #expect(versus.confusion["3_partial_refusal"] == ["refusal": 2])
        #expect(results.classifier == "xstest-strmatch" && results.model == nil)

        // the report shows the confusion table beside the rates
        let report = try ExperimentReport.load(folder: scratch.folder).markdown()
        #expect(report.contains("## human: verdicts against `final_label`"))
        #expect(report.contains("| 2_full_refusal | 4 | 1 | 0 |") && report.contains("| agreement | 92.9% | 13 of 14 |  |"))
    }

    /// One verdict line per input row, in input order; a run stopped part way resumes to the
    /// file one uninterrupted run writes.
    @Test func verdictFilesResumeToTheSameBytes() throws {
        let scratch = Scratch()
        let data = fixture("xstest-llama2orig-strmatch.csv")
        let whole = EvaluationOptions(kind: .classify, data: data, classifier: "xstest", labelColumn: "final_label")
        _ = try EvaluationRunner.classify(whole, output: "\(scratch.folder)/whole")
        let count = Counter()
        let stopped = try EvaluationRunner.classify(whole, output: "\(scratch.folder)/resumed", shouldStop: { count.next() > 5 })
        #expect(stopped.runs[0].complete == false)
        _ = try EvaluationRunner.classify(whole, output: "\(scratch.folder)/resumed")
        let a = try String(contentsOfFile: "\(scratch.folder)/whole/classify/responses.jsonl", encoding: .utf8)
        let b = try String(contentsOfFile: "\(scratch.folder)/resumed/classify/responses.jsonl", encoding: .utf8)
        #expect(a == b)
        let ids = a.split(separator: "\n").dropFirst().map { line in
            (try! JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any])["id"] as! Int
        }
        #expect(ids == Array(0..<14))
        #expect(
            try String(contentsOfFile: "\(scratch.folder)/whole/classify.json", encoding: .utf8)
                == String(contentsOfFile: "\(scratch.folder)/resumed/classify.json", encoding: .utf8))
    }

    /// The public shapes: HarmBench's completions JSON, a list of objects, JSONL (a refusal
    /// responses file's header line skipped), CSV with HarmBench's column names.
    @Test func savedResponsesInEveryShape() throws {
        let scratch = Scratch()
        let harmBench = scratch.file(
            "completions.json",
            #"{"write_poem": [{"test_case": "Write a poem about tea", "generation": "Steam curls..."}], "#
                + #""bake_cake": [{"test_case": "How do I bake a cake?", "generation": "Sorry, no."}]}"#
        )
        #expect(
            try ResponseSet.load(harmBench) == [
                SavedResponse(id: 0, prompt: "How do I bake a cake?", response: "Sorry, no.", category: "bake_cake"),
                SavedResponse(id: 1, prompt: "Write a poem about tea", response: "Steam curls...", category: "write_poem"),
            ])
        let list = scratch.file("list.json", #"[{"goal": "Name a colour", "completion": "Blue", "human": 1}]"#)
        #expect(
            try ResponseSet.load(list, labelColumn: "human") == [
                SavedResponse(id: 0, prompt: "Name a colour", response: "Blue", label: "1")
            ])
        let lines = scratch.file(
            "refusal.jsonl",
            #"{"header": {"evaluation": "refusal"}}"# + "\n" + #"{"id": 0, "prompt": "Say hi", "response": "Hi!", "verdict": "compliance"}"#
                + "\n")
        #expect(try ResponseSet.load(lines) == [SavedResponse(id: 0, prompt: "Say hi", response: "Hi!")])
        let csv = scratch.file("hb.csv", "behavior,generation,category\nName a fruit,An apple,food\n")
        #expect(try ResponseSet.load(csv) == [SavedResponse(id: 0, prompt: "Name a fruit", response: "An apple", category: "food")])
    }

    @Test func malformedSavedResponsesNameTheFileAndLine() throws {
        let scratch = Scratch()
        let noResponse = scratch.file("a.csv", "prompt,answer\nhi,hello\n")
        #expect {
            try ResponseSet.load(noResponse)
        } throws: { error in
            guard case EvaluationError.malformedData(let file, let line, let problem) = error else { return false }
            return file == noResponse && line == 1 && problem.contains("no response column")
        }
        let noLabel = scratch.file(
            "b.jsonl", #"{"prompt": "hi", "response": "hello"}"# + "\n" + #"{"prompt": "yo", "response": "hey", "label": "refusal"}"#)
        #expect(throws: EvaluationError.malformedData(file: noLabel, line: 1, problem: "no `label` label (a string or a number)")) {
            try ResponseSet.load(noLabel, labelColumn: "label")
        }
        let missingColumn = scratch.file("c.csv", "prompt,response\nhi,hello\n")
        #expect {
            try ResponseSet.load(missingColumn, labelColumn: "human")
        } throws: { error in
            guard case EvaluationError.malformedData(_, let line, let problem) = error else { return false }
            return line == 1 && problem.contains("`human`")
        }
        #expect(throws: EvaluationError.self) { try ResponseSet.load(scratch.file("d.json", "{\"x\": 3}")) }
    }

    /// The label column's words read as verdicts, or an explicit map does.
    @Test func labelsReadAsVerdicts() {
        #expect(LabelAgreement.verdict(of: "2_full_refusal", map: nil) == .refusal)
        #expect(LabelAgreement.verdict(of: "3_partial_refusal", map: nil) == .refusal)
        #expect(LabelAgreement.verdict(of: "1_full_compliance", map: nil) == .compliance)
        #expect(LabelAgreement.verdict(of: "following", map: nil) == .compliance)
        #expect(LabelAgreement.verdict(of: "1", map: nil) == nil)
        #expect(LabelAgreement.verdict(of: "1", map: ["1": .compliance, "0": .refusal]) == .compliance)
    }

    /// XSTest's exact rule against the library's lenient variant: no degenerate verdict, and
    /// a typographic apostrophe is not an ASCII one.
    @Test func xsTestStringMatchIsXSTestsRuleExactly() {
        let strict = RefusalPhrases.xsTestStringMatch
        let lenient = RefusalPhrases.xsTest
        #expect(strict.classify(prompt: "p", response: "\u{1F}\n  I CAN'T do that").verdict == .refusal)
        #expect(strict.classify(prompt: "p", response: "I can\u{2019}t do that").verdict == .compliance)
        #expect(lenient.classify(prompt: "p", response: "I can\u{2019}t do that").verdict == .refusal)
        #expect(strict.classify(prompt: "p", response: "").verdict == .compliance)
        #expect(lenient.classify(prompt: "p", response: "").verdict == .degenerate)
    }
}

/// Judge templates: rendered as Python's `str.format` renders HarmBench's, checked when read.
struct JudgeTemplateTests {
    struct Case: Decodable {
        let behavior: String
        let generation: String
        let rendered: String
    }

    /// HarmBench's published Llama-2 classifier prompt, as shipped, renders to what Python
    /// renders (scripts/make-judge-template-fixtures.py), and takes HarmBench's answers.
    @Test func harmBenchsPromptRendersAsPythonRendersIt() throws {
        let template = try JudgeTemplate(file: exampleData("judge-templates/harmbench-llama2-cls.txt"))
        #expect(template.refusalAnswer == "No" && template.complianceAnswer == "Yes" && !template.chat)
        let cases = try JSONDecoder().decode(
            [Case].self, from: Data(contentsOf: URL(fileURLWithPath: fixture("harmbench-template-rendered.json"))))
        #expect(cases.count == 2)
        for c in cases { #expect(template.render(prompt: c.behavior, response: c.generation) == c.rendered) }
    }

    @Test func badTemplatesAreErrorsNamingTheProblem() {
        #expect {
            try JudgeTemplate(text: "Q: {prompt}\nA: {answer}", refusalAnswer: "Yes", complianceAnswer: "No", chat: true, name: "t.txt")
        } throws: { error in
            guard case EvaluationError.malformedData(let file, let line, let problem) = error else { return false }
            return file == "t.txt" && line == 2 && problem.contains("{answer}")
        }
        #expect(throws: EvaluationError.self) {
            try JudgeTemplate(text: "{prompt} }", refusalAnswer: "Yes", complianceAnswer: "No", chat: true, name: "t")
        }
        #expect(throws: EvaluationError.self) {
            try JudgeTemplate(text: "no placeholders", refusalAnswer: "Yes", complianceAnswer: "No", chat: true, name: "t")
        }
        #expect(throws: EvaluationError.self) {
            try JudgeTemplate(text: "{prompt}", refusalAnswer: "Yes", complianceAnswer: "Yes", chat: true, name: "t")
        }
        #expect(throws: Never.self) {
            let t = try JudgeTemplate(text: "{{x}} {prompt}", refusalAnswer: "Y", complianceAnswer: "N", chat: true, name: "t")
            #expect(t.render(prompt: "p", response: "r") == "{x} p")
        }
    }
}

@Suite(.enabled(if: RealModel.available, "SmolLM2 not fetched: run scripts/fetch-model or make test"))
struct TemplatedJudgeTests {
    /// With HarmBench's prompt the judge reads the raw text (no chat format) and the verdict
    /// is the sign of log p(No) − log p(Yes) there: checked against a plain forward pass.
    @Test func verdictFollowsTheTemplatesAnswers() throws {
        let model = RealModel.f32
        let template = try JudgeTemplate(file: exampleData("judge-templates/harmbench-llama2-cls.txt"))
        let judge = try RefusalJudge(judge: model, template: template)
        #expect(judge.name.hasSuffix("template:harmbench-llama2-cls.txt answers:No/Yes"))
        for generation in ["Crimson leaves drifting on the cooling wind.", "I'm sorry, but I can't help with that."] {
            let behavior = "Write a haiku about autumn leaves"
            let classification = judge.classify(prompt: behavior, response: generation)
            let ids = model.tokenizer.encode(template.render(prompt: behavior, response: generation), parseSpecial: true, addBOS: nil)
            let logits = try #require(model.model.forward(ids, logits: .last))
            func logprob(_ word: String) -> Double {
                Double(
                    Kernels.logProbabilities(logits: logits, targets: model.tokenizer.encode(word, parseSpecial: false, addBOS: false))[0])
            }
            let logOdds = logprob("No") - logprob("Yes")
            #expect(classification.verdict == (logOdds > 0 ? .refusal : .compliance))
            #expect(classification.reason?.hasPrefix("log p(No) - log p(Yes) = ") == true)
            let reported = try #require(
                classification.reason.flatMap { Double($0.split(separator: "=").last!.trimmingCharacters(in: .whitespaces)) })
            #expect(abs(reported - logOdds) < 2e-3)
        }
    }
}

/// Judges whose answer is scripted: SmolLM2's tokenizer and metadata on a one-layer model
/// whose every projection is zero, so the last position's hidden state is its token's
/// embedding (all ones), and whose output head has one non-zero row, the scripted answer's.
/// Whatever it reads, it answers that word (log-odds ±64), which pins down how each
/// template's answers map to verdicts.
@Suite(.enabled(if: RealModel.available, "SmolLM2 not fetched: run scripts/fetch-model or make test"))
struct ScriptedJudgeTests {
    static func judge(answering word: String, in folder: String) throws -> LanguageModel {
        let source = try GGUFFile(path: RealModel.path!)
        let answer = RealModel.int8.tokenizer.encode(word, parseSpecial: false, addBOS: false)
        try #require(answer.count == 1)
        let (vocab, dim, ffn) = (RealModel.int8.model.config.vocabSize, 64, 32)
        var writer = GGUFWriter()
        writer.copyMetadata(of: source)
        for (key, value) in [
            ("llama.block_count", 1), ("llama.embedding_length", dim), ("llama.feed_forward_length", ffn),
            ("llama.attention.head_count", 1), ("llama.attention.head_count_kv", 1), ("llama.rope.dimension_count", dim),
        ] {
            writer.set(key, .uint32(UInt32(value)))
        }
        func filled(_ shape: [Int], _ value: (Int) -> Float) -> Tensor {
            try! Tensor(shape: shape, values: (0..<shape.reduce(1, *)).map(value))
        }
        writer.add("token_embd.weight", shape: [vocab, dim], type: .f32) { filled([vocab, dim]) { _ in 1 } }
        for norm in ["blk.0.attn_norm.weight", "blk.0.ffn_norm.weight", "output_norm.weight"] {
            writer.add(norm, shape: [dim], type: .f32) { filled([dim]) { _ in 1 } }
        }
        for (name, shape) in [
            ("attn_q", [dim, dim]), ("attn_k", [dim, dim]), ("attn_v", [dim, dim]), ("attn_output", [dim, dim]),
            ("ffn_gate", [ffn, dim]), ("ffn_up", [ffn, dim]), ("ffn_down", [dim, ffn]),
        ] {
            writer.add("blk.0.\(name).weight", shape: shape, type: .f32) { Tensor(zeros: shape) }
        }
        let row = Int(answer[0])
        writer.add("output.weight", shape: [vocab, dim], type: .f32) { filled([vocab, dim]) { $0 / dim == row ? 1 : 0 } }
        let path = "\(folder)/judge-\(word).gguf"
        try writer.write(to: path)
        return try LanguageModel.load(path: path)
    }

    @Test func eachTemplateMapsItsAnswersToVerdicts() throws {
        let scratch = Scratch()
        let yes = try Self.judge(answering: "Yes", in: scratch.folder)
        let no = try Self.judge(answering: "No", in: scratch.folder)
        let harmBench = try JudgeTemplate(file: exampleData("judge-templates/harmbench-llama2-cls.txt"))
        let responses = ["I'm sorry, I can't help with that.", "Sure: bake it at 180 degrees for 25 minutes."]
        func verdicts(_ judge: LanguageModel, _ template: JudgeTemplate) throws -> [Verdict] {
            let classifier = try RefusalJudge(judge: judge, template: template)
            return responses.map { classifier.classify(prompt: "How do I bake a cake?", response: $0).verdict }
        }
        // the built-in question asks whether it refused: Yes is a refusal
        #expect(try verdicts(yes, .builtIn) == [.refusal, .refusal])
        #expect(try verdicts(no, .builtIn) == [.compliance, .compliance])
        // HarmBench's asks whether the generation is an instance of the behavior: Yes complies
        #expect(try verdicts(yes, harmBench) == [.compliance, .compliance])
        #expect(try verdicts(no, harmBench) == [.refusal, .refusal])
        // answers named by the user, in the chat format
        let custom = try JudgeTemplate(file: exampleData("judge-templates/harmbench-llama2-cls.txt"), answers: ("Yes", "No"), chat: true)
        #expect(try verdicts(yes, custom) == [.refusal, .refusal])
        let reason = try RefusalJudge(judge: no, template: harmBench).classify(prompt: "p", response: "Hello there.").reason
        #expect(reason.flatMap { Double($0.split(separator: "=").last!.trimmingCharacters(in: .whitespaces)) }.map { $0 > 60 } == true)

        // the same through an evaluation's options, on saved responses
        let data = scratch.file(
            "saved.jsonl", responses.map { #"{"prompt": "How do I bake a cake?", "response": "\#($0)"}"# }.joined(separator: "\n"))
        let results = try EvaluationRunner.classify(
            EvaluationOptions(
                kind: .classify, data: data, classifier: "judge", judge: "\(scratch.folder)/judge-Yes.gguf",
                judgeTemplate: exampleData("judge-templates/harmbench-llama2-cls.txt")),
            output: scratch.folder)
        #expect(results.runs[0].refusal?.overall.compliance.count == 2)
        #expect(results.classifier?.hasSuffix("template:harmbench-llama2-cls.txt answers:No/Yes") == true)
    }
}
