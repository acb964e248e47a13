import Foundation

/// An error in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.
struct APIError: Error {
    let status: Int
    let message: String
    var type = "invalid_request_error"
    var param: String?
    var code: String?

    static func badRequest(_ message: String, param: String? = nil, code: String? = nil) -> APIError {
        APIError(status: 400, message: message, param: param, code: code)
    }

    var json: [String: Any] {
        ["error": ["message": message, "type": type, "param": param ?? NSNull(), "code": code ?? NSNull()] as [String: Any]]
    }
}

/// A request body's JSON object, read field by field: a missing field is nil, a field of
/// the wrong type or out of range is a 400 naming it. Fields it does not know are ignored,
/// as vLLM does.
struct APIRequest {
    let fields: [String: Any]

    init(body: [UInt8]) throws(APIError) {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed])
        } catch {
            throw .badRequest("the body is not valid JSON (\(body.isEmpty ? "it is empty" : "\(error.localizedDescription)"))")
        }
        guard let fields = object as? [String: Any] else { throw .badRequest("the body must be a JSON object") }
        self.fields = fields
    }

    /// The value, or nil when absent or JSON null.
    func value(_ name: String) -> Any? {
        guard let value = fields[name], !(value is NSNull) else { return nil }
        return value
    }

    func string(_ name: String) throws(APIError) -> String? {
        guard let value = value(name) else { return nil }
        guard let string = value as? String else { throw .badRequest("'\(name)' must be a string", param: name) }
        return string
    }

    func bool(_ name: String) throws(APIError) -> Bool? {
        guard let value = value(name) else { return nil }
        guard let number = value as? NSNumber, Self.isBool(number) else {
            throw .badRequest("'\(name)' must be true or false", param: name)
        }
        return number.boolValue
    }

    func int(_ name: String, in range: ClosedRange<Int>) throws(APIError) -> Int? {
        guard let value = value(name) else { return nil }
        guard let int = Self.integer(value) else { throw .badRequest("'\(name)' must be an integer", param: name) }
        guard range.contains(int) else { throw .badRequest("'\(name)' must be in \(Self.describe(range)); got \(int)", param: name) }
        return int
    }

    func number(_ name: String, in range: ClosedRange<Double>) throws(APIError) -> Double? {
        guard let value = value(name) else { return nil }
        guard let number = value as? NSNumber, !Self.isBool(number) else { throw .badRequest("'\(name)' must be a number", param: name) }
        guard range.contains(number.doubleValue) else {
            throw .badRequest(
                "'\(name)' must be between \(range.lowerBound) and \(range.upperBound); got \(number.doubleValue)", param: name)
        }
        return number.doubleValue
    }

    /// `stop`: a string or a list of strings.
    func stopStrings() throws(APIError) -> [String] {
        guard let value = value("stop") else { return [] }
        if let one = value as? String { return [one] }
        guard let list = value as? [Any], let strings = list as? [String] else {
            throw .badRequest("'stop' must be a string or a list of strings", param: "stop")
        }
        return strings
    }

    /// Fields this server does not implement are refused unless they ask for nothing.
    func refuseUnsupported(_ names: [String: Any]) throws(APIError) {
        for (name, neutral) in names {
            guard let value = value(name) else { continue }
            let isNeutral =
                (value as? NSNumber).map { ($0 as NSNumber) == (neutral as? NSNumber) } ?? ((value as? [String: Any])?.isEmpty ?? false)
            if !isNeutral { throw .badRequest("'\(name)' is not supported by this server", param: name) }
        }
    }

    /// An integer from JSON: a number with no fraction (not a boolean).
    static func integer(_ value: Any) -> Int? {
        guard let number = value as? NSNumber, !isBool(number) else { return nil }
        let double = number.doubleValue
        guard double == double.rounded(), abs(double) < 9e15 else { return nil }
        return Int(double)
    }

    /// JSON's true and false parse to booleans whose type code is "c" (char); numbers never do.
    static func isBool(_ number: NSNumber) -> Bool { String(cString: number.objCType) == "c" }

    private static func describe(_ range: ClosedRange<Int>) -> String {
        range.upperBound == .max ? "\(range.lowerBound)..." : "\(range.lowerBound)...\(range.upperBound)"
    }
}
