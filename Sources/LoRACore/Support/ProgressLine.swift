import Foundation

/// Progress of a long operation, for a progress line.
public struct WorkProgress: Sendable {
    public let completed: Int
    public let total: Int
    /// What `completed` counts ("tensors", "tokens", …).
    public let unit: String

    public init(completed: Int, total: Int, unit: String) {
        self.completed = completed
        self.total = total
        self.unit = unit
    }
}

/// Renders `WorkProgress` on standard error: one self-updating line with rate and ETA on a
/// terminal, plain log lines (every 10% or 10 s) when the output goes to a file or a pipe.
public final class ProgressLine: @unchecked Sendable {
    private let label: String
    private let isTerminal = isatty(STDERR_FILENO) == 1
    private let start = Date()
    private var lastLog = Date.distantPast
    private var lastDecile = -1
    private var drewLine = false
    /// The first update: the rate counts from it, so work a resumed run found done (and the
    /// first item's warm-up) does not inflate it.
    private var first: (completed: Int, time: Date)?

    public init(_ label: String) {
        self.label = label
    }

    public func update(_ progress: WorkProgress) {
        update(progress, detail: nil)
    }

    /// `detail` (a loss, a rate, …) follows the counts.
    public func update(_ progress: WorkProgress, detail: String?) {
        let now = Date()
        let (baseline, since) = first ?? (progress.completed, now)
        if first == nil { first = (baseline, since) }
        let elapsed = now.timeIntervalSince(since)
        let rate = elapsed > 0 ? Double(progress.completed - baseline) / elapsed : 0
        let eta = rate > 0 ? Self.duration(Double(progress.total - progress.completed) / rate) : "–"
        let percent = progress.total > 0 ? 100 * progress.completed / progress.total : 100
        let text =
            "\(label): \(progress.completed)/\(progress.total) \(progress.unit) (\(percent)%), "
            + (detail.map { "\($0), " } ?? "") + "\(String(format: "%.2f", rate)) \(progress.unit)/s, ETA \(eta)"
        if isTerminal {
            FileHandle.standardError.write(Data("\r\u{1B}[K\(text)".utf8))
            drewLine = true
        } else if percent / 10 > lastDecile || Date().timeIntervalSince(lastLog) >= 10 {
            lastDecile = percent / 10
            lastLog = Date()
            FileHandle.standardError.write(Data("\(text)\n".utf8))
        }
    }

    /// A message on its own line, the progress line redrawn below it at the next update.
    public func note(_ message: String) {
        let clear = isTerminal && drewLine ? "\r\u{1B}[K" : ""
        FileHandle.standardError.write(Data("\(clear)\(label): \(message)\n".utf8))
        drewLine = false
    }

    /// Ends the line with a closing message.
    public func finish(_ message: String) {
        let text = "\(label): \(message) in \(Self.duration(Date().timeIntervalSince(start)))"
        let clear = isTerminal && drewLine ? "\r\u{1B}[K" : ""
        FileHandle.standardError.write(Data("\(clear)\(text)\n".utf8))
    }

    static func duration(_ seconds: Double) -> String {
        seconds < 60 ? String(format: "%.1fs", seconds) : String(format: "%dm%02ds", Int(seconds) / 60, Int(seconds) % 60)
    }
}
