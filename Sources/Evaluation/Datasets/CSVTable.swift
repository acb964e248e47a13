/// A CSV file as RFC 4180 and Python's csv module write it: fields separated by commas,
/// quoted with `"` when they hold commas, quotes (doubled) or line breaks. Hand-written
/// rather than SwiftCSV 0.10 or CSV.swift 2.5, tried on the same inputs: both read quoted
/// fields right, but both accept a quote that is never closed (the rest of the file becomes
/// one field) and CSV.swift also `"x"y`, without an error, and neither reports a line:
/// here each is an error naming the file and line.
struct CSVTable {
    /// Each record's fields and the line it starts on.
    let records: [(line: Int, fields: [String])]

    init(text: String, file: String) throws(EvaluationError) {
        var records: [(Int, [String])] = []
        var fields: [String] = []
        var field = ""
        var quoted = false
        var afterQuote = false
        var line = 1
        var recordLine = 1
        var characters = Array(text.unicodeScalars).makeIterator()
        var pending = characters.next()
        func endRecord() {
            fields.append(field)
            if !(fields.count == 1 && fields[0].isEmpty) { records.append((recordLine, fields)) }
            fields = []
            field = ""
        }
        while let c = pending {
            pending = characters.next()
            if quoted {
                if c == "\"" {
                    if pending == "\"" {
                        field.unicodeScalars.append("\"")
                        pending = characters.next()
                    } else {
                        quoted = false
                        afterQuote = true
                    }
                } else {
                    if c == "\n" { line += 1 }
                    field.unicodeScalars.append(c)
                }
                continue
            }
            switch c {
            case "\"" where field.isEmpty && !afterQuote: quoted = true
            case ",":
                fields.append(field)
                field = ""
                afterQuote = false
            case "\r" where pending == "\n": continue
            case "\n", "\r":
                endRecord()
                afterQuote = false
                line += 1
                recordLine = line
            default:
                if afterQuote { throw .malformedData(file: file, line: line, problem: "text after a closing quote") }
                field.unicodeScalars.append(c)
            }
        }
        if quoted { throw .malformedData(file: file, line: recordLine, problem: "a quoted field is never closed") }
        if !field.isEmpty || !fields.isEmpty { endRecord() }
        self.records = records
    }
}

extension CSVTable {
    /// A table whose first record names its columns: the names trimmed and in lower case,
    /// and the records after it.
    struct Named {
        let file: String
        let header: (line: Int, fields: [String])
        let names: [String]
        let rows: ArraySlice<(line: Int, fields: [String])>

        /// The optional category column: `category`, or XSTest's `type`.
        var categoryColumn: Int? { names.firstIndex(of: "category") ?? names.firstIndex(of: "type") }

        /// A row's fields, one per column, else an error naming its line.
        func fields(of row: (line: Int, fields: [String])) throws(EvaluationError) -> [String] {
            guard row.fields.count == names.count else {
                throw .malformedData(file: file, line: row.line, problem: "\(row.fields.count) fields for a header of \(names.count)")
            }
            return row.fields
        }
    }

    /// The records as a header and its rows (an empty file is an error naming it).
    func named(file: String) throws(EvaluationError) -> Named {
        guard let header = records.first else { throw .emptyDataset(file: file) }
        return Named(
            file: file, header: header, names: header.fields.map { $0.trimmingCharacters(in: .whitespaces).lowercased() },
            rows: records.dropFirst())
    }
}
