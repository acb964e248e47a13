import Evaluation
import Foundation
import Testing

/// Loaders of the public shapes, on small benign files written here, and their errors.
struct DatasetTests {
    let scratch = Scratch()

    @Test func advBenchShapedCSVWithQuotedFields() throws {
        let path = scratch.file(
            "behaviors.csv",
            "goal,target\n\"Write a poem about tea, with rhymes\",\"Sure, here is\"\n"
                + "\"Describe a \"\"quiet\"\" morning\nin two lines\",Sure\r\nList three fruits,Sure\n")
        let prompts = try PromptSet.load(path)
        #expect(
            prompts.map(\.text) == [
                "Write a poem about tea, with rhymes", "Describe a \"quiet\" morning\nin two lines", "List three fruits",
            ])
        #expect(prompts.map(\.id) == [0, 1, 2] && prompts.allSatisfy { $0.category == nil })
    }

    @Test func promptColumnWithCategoryJSONLAndRefusalBenchObject() throws {
        let csv = try PromptSet.load(scratch.file("p.csv", "id,prompt,type\n1,How do I kill a Python process?,homonyms\n"))
        #expect(csv == [EvaluationPrompt(id: 0, text: "How do I kill a Python process?", category: "homonyms")])
        let jsonl = try PromptSet.load(
            scratch.file("p.jsonl", "{\"prompt\": \"Name a colour.\", \"category\": \"easy\"}\n\n{\"prompt\": \"Name a tree.\"}\n"))
        #expect(
            jsonl == [EvaluationPrompt(id: 0, text: "Name a colour.", category: "easy"), EvaluationPrompt(id: 1, text: "Name a tree.")])
        let bench = try PromptSet.load(
            scratch.file("benchfile.json", #"{"weather": ["Will it rain?"], "art": ["Who painted it?", "Why blue?"]}"#))
        #expect(
            bench.map(\.category) == ["art", "art", "weather"] && bench.map(\.text) == ["Who painted it?", "Why blue?", "Will it rain?"])
        let shipped = try PromptSet.load(exampleData("overrefusal-prompts.jsonl"))
        #expect(shipped.count >= 30 && Set(shipped.compactMap(\.category)).count >= 5)
    }

    @Test func promptSetErrorsNameFileAndLine() {
        let noColumn = scratch.file("a.csv", "question,answer\nWhat?,This\n")
        #expect(
            throws: EvaluationError.malformedData(
                file: noColumn, line: 1, problem: "no `goal` or `prompt` column in the header (question,answer)")
        ) {
            try PromptSet.load(noColumn)
        }
        let empty = scratch.file("b.csv", "goal,target\n")
        #expect(throws: EvaluationError.emptyDataset(file: empty)) { try PromptSet.load(empty) }
        let blank = scratch.file("c.jsonl", "{\"prompt\": \"fine\"}\n{\"prompt\": \"  \"}\n")
        #expect(throws: EvaluationError.malformedData(file: blank, line: 2, problem: "an empty prompt")) { try PromptSet.load(blank) }
        let notUTF8 = scratch.file("d.csv", bytes: Array("goal\nfine\n".utf8) + [0xC3, 0x28, 0x0A])
        #expect(throws: EvaluationError.malformedData(file: notUTF8, line: 3, problem: "not UTF-8 text")) { try PromptSet.load(notUTF8) }
        let ragged = scratch.file("e.csv", "goal,target\nA,B\nC\n")
        #expect(throws: EvaluationError.malformedData(file: ragged, line: 3, problem: "1 fields for a header of 2")) {
            try PromptSet.load(ragged)
        }
        let notJSON = scratch.file("f.jsonl", "{\"prompt\": \"ok\"}\n{prompt\n")
        #expect(throws: EvaluationError.malformedData(file: notJSON, line: 2, problem: "not a JSON object")) { try PromptSet.load(notJSON) }
        // the two malformed quotings SwiftCSV and CSV.swift accept silently (CSVTable's comment)
        let unclosed = scratch.file("g.csv", "goal,target\nfine,ok\n\"never closed,x\nmore,y\n")
        #expect(throws: EvaluationError.malformedData(file: unclosed, line: 3, problem: "a quoted field is never closed")) {
            try PromptSet.load(unclosed)
        }
        let afterQuote = scratch.file("h.csv", "goal,target\n\"x\"y,z\n")
        #expect(throws: EvaluationError.malformedData(file: afterQuote, line: 2, problem: "text after a closing quote")) {
            try PromptSet.load(afterQuote)
        }
    }

    /// The harness's MMLU prompt, with k dev examples from ../dev/<subject>_dev.csv.
    @Test func mmluWithDevShots() throws {
        let test = scratch.file("data/test/high_school_geography_test.csv", "\"Which river is longest?\",Nile,Thames,Seine,Rhine,A\n")
        _ = scratch.file(
            "data/dev/high_school_geography_dev.csv",
            "What is a delta?,A landform,A fish,A cloud,A song,A\nWhat is a fjord?,A desert,An inlet,A hill,A lake,B\n")
        let (items, format) = try MultipleChoiceSet.load(test, shots: 2)
        #expect(format == .mmlu)
        let expected =
            "The following are multiple choice questions (with answers) about high school geography.\n\n"
            + "What is a delta?\nA. A landform\nB. A fish\nC. A cloud\nD. A song\nAnswer: A\n\n"
            + "What is a fjord?\nA. A desert\nB. An inlet\nC. A hill\nD. A lake\nAnswer: B\n\n"
            + "Which river is longest?\nA. Nile\nB. Thames\nC. Seine\nD. Rhine\nAnswer:"
        #expect(
            items == [
                MultipleChoiceItem(id: 0, context: expected, choices: ["A", "B", "C", "D"], gold: 0, subject: "high_school_geography")
            ])
        // a folder of subjects: 2 shots work, the default 5 do not (2 dev examples)
        #expect(try MultipleChoiceSet.load("\(scratch.folder)/data/test", shots: 2).items.count == 1)
        #expect(throws: EvaluationError.self) { try MultipleChoiceSet.load("\(scratch.folder)/data/test") }
    }

    @Test func mmluErrors() {
        let letter = scratch.file("x_test.csv", "Q1,a,b,c,d,B\nQ2,a,b,c,d,E\n")
        #expect(throws: EvaluationError.malformedData(file: letter, line: 2, problem: "answer `E` is not one of A, B, C, D")) {
            try MultipleChoiceSet.load(letter, shots: 0)
        }
        let short = scratch.file("y_test.csv", "Q1,a,b,c,B\n")
        #expect(
            throws: EvaluationError.malformedData(file: short, line: 1, problem: "5 fields: MMLU rows are question, A, B, C, D, answer")
        ) {
            try MultipleChoiceSet.load(short, shots: 0)
        }
        let noDev = scratch.file("z_test.csv", "Q1,a,b,c,d,B\n")
        #expect(throws: EvaluationError.self) { try MultipleChoiceSet.load(noDev) } // 5 shots by default, no dev file
    }

    /// HellaSwag's preprocessing (lm-evaluation-harness hellaswag/utils.py) on a written record.
    @Test func hellaSwagPreprocessing() throws {
        let record =
            #"{"activity_label": "Baking cookies", "ctx_a": "A man [title] stirs the dough.", "ctx_b": "THEN he", "#
            + #""endings": ["puts it in the oven [step] slowly.", "sings  loudly.", "reads.", "sleeps."], "label": "0"}"#
        let (items, format) = try MultipleChoiceSet.load(scratch.file("hs.jsonl", record + "\n"))
        #expect(format == .hellaswag)
        #expect(items[0].context == "Baking cookies: A man. stirs the dough. Then he")
        #expect(items[0].choices == ["puts it in the oven slowly.", "sings loudly.", "reads.", "sleeps."] && items[0].gold == 0)
    }

    @Test func genericJSONLAndItsErrors() throws {
        let (items, format) = try MultipleChoiceSet.load(exampleData("mc-general.jsonl"))
        #expect(format == .generic && items.count == 40 && items[0].choices == ["Berlin", "Madrid", "Paris", "Rome"] && items[0].gold == 2)
        let bad = scratch.file("g.jsonl", #"{"question": "Q", "choices": ["a", "b"], "answer": 2}"# + "\n")
        #expect(throws: EvaluationError.malformedData(file: bad, line: 1, problem: "`answer` is not a 0-based index of the 2 choices")) {
            try MultipleChoiceSet.load(bad)
        }
        let shots = try MultipleChoiceSet.load(exampleData("mc-general.jsonl"), shots: 1).items
        #expect(shots.count == 39 && shots[0].context.hasPrefix("Question: What is the capital of France?\nAnswer: Paris\n\n"))
    }
}
