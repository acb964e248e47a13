import ArgumentParser
import Evaluation
import Foundation

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write report.json, report.md and report.html (tables and SVG charts) for an eval or experiment folder."
    )

    @Argument(help: "The folder `lora eval` or `lora experiment` wrote.") var folder: String

    func run() throws {
        try reportingErrors {
            let report = try ExperimentReport.load(folder: folder)
            try report.write(to: folder)
            print(report.markdown())
            FileHandle.standardError.write(Data("report: \(folder)/report.md, \(folder)/report.html, \(folder)/report.json\n".utf8))
        }
    }
}
