/// The text of one generation as its tokens arrive. Stop strings are matched on UTF-8
/// bytes (whole characters on both sides, never a grapheme re-segmented by a later
/// combining mark), and whatever could still begin one is held back until it cannot.
struct GeneratedText {
    private var decoder: StreamingDecoder
    private var output: [UInt8] = []
    /// Bytes of `output` handed out so far.
    private var emitted = 0
    private let stopStrings: [[UInt8]]

    init(tokenizer: any Tokenizer, stopStrings: [String]) {
        decoder = StreamingDecoder(tokenizer: tokenizer)
        self.stopStrings = stopStrings.filter { !$0.isEmpty }.map { Array($0.utf8) }
    }

    /// The text handed out so far (without a stop string that ended it).
    var text: String { String(decoding: output[..<emitted], as: UTF8.self) }

    /// Appends token `id`: the text it makes visible (empty while a character or a possible
    /// stop string is open), and whether a stop string completed (generation ends there).
    mutating func append(_ id: Int32) -> (piece: String, stopped: Bool) {
        output += Array(decoder.append(id).utf8)
        var visible = output.count
        var stopped = false
        for stopString in stopStrings {
            if let range = output[emitted...].firstRange(of: stopString) {
                visible = min(visible, range.lowerBound)
                stopped = true
            } else {
                // the longest tail that a later token could complete into this stop string
                let longest = min(stopString.count - 1, output.count - emitted)
                if let held = stride(from: longest, to: 0, by: -1).first(where: { output.suffix($0).elementsEqual(stopString.prefix($0)) })
                {
                    visible = min(visible, output.count - held)
                }
            }
        }
        defer { emitted = visible }
        return (String(decoding: output[emitted..<visible], as: UTF8.self), stopped)
    }

    /// Ends a generation that no stop string ended: the text still held back.
    mutating func finish() -> String {
        output += Array(decoder.finish().utf8)
        defer { emitted = output.count }
        return String(decoding: output[emitted...], as: UTF8.self)
    }
}
