import Foundation
import LoRACore

/// OpenAI's HTTP API (completions, chat completions, models) and vLLM's tokenizer
/// endpoints over one loaded model and its adapters, each adapter a model id.
final class OpenAIAPI: Sendable {
    let loaded: LanguageModel
    let service: GenerationService
    /// Model ids: the base first, then each adapter.
    let models: [(id: String, adapter: PreparedAdapter?)]
    let created = Int(Date().timeIntervalSince1970)

    init(loaded: LanguageModel, service: GenerationService, models: [(id: String, adapter: PreparedAdapter?)]) {
        self.loaded = loaded
        self.service = service
        self.models = models
    }

    var tokenizer: any Tokenizer { loaded.tokenizer }
    var context: Int { service.context }
    /// The most alternatives `logprobs` may ask for (vLLM's limit).
    static let maxAlternatives = 20

    func respond(_ request: HTTPRequest) async throws(APIError) -> HTTPResponse {
        switch (request.method, request.path) {
        case (.GET, "/v1/models"):
            return .json(
                [
                    "object": "list",
                    "data": models.map { model in
                        [
                            "id": model.id, "object": "model", "created": created, "owned_by": "swift-lora", "root": models[0].id,
                            "parent": model.adapter == nil ? NSNull() : models[0].id as Any, "max_model_len": context,
                        ] as [String: Any]
                    },
                ])
        case (.GET, "/tokenizer_info"):
            func name(_ id: Int32?) -> Any { id.flatMap(tokenizer.token) ?? NSNull() }
            return .json([
                "eos_token": name(tokenizer.eosTokenID), "bos_token": name(tokenizer.bosTokenID), "pad_token": name(tokenizer.padTokenID),
                "add_bos_token": tokenizer.addsBOS, "model_max_length": context, "vocab_size": tokenizer.vocabularySize,
            ])
        case (.POST, "/tokenize"):
            let body = try APIRequest(body: request.body)
            let tokens: [Int32]
            if let messages = body.value("messages") {
                tokens = try chatPrompt(messages, addGenerationPrompt: try body.bool("add_generation_prompt") ?? true)
            } else {
                guard let prompt = try body.string("prompt") else {
                    throw .badRequest("'prompt' or 'messages' is required", param: "prompt")
                }
                tokens = tokenizer.encode(prompt, parseSpecial: true, addBOS: try body.bool("add_special_tokens") == false ? false : nil)
            }
            return .json(["tokens": tokens.map(Int.init), "count": tokens.count, "max_model_len": context])
        case (.POST, "/detokenize"):
            let body = try APIRequest(body: request.body)
            guard let list = body.value("tokens") else { throw .badRequest("'tokens' is required", param: "tokens") }
            return .json(["prompt": tokenizer.decode(try tokenIDs(list, param: "tokens"))])
        case (.POST, "/v1/completions"):
            return try await completions(APIRequest(body: request.body))
        case (.POST, "/v1/chat/completions"):
            return try await chatCompletions(APIRequest(body: request.body))
        case (_, "/v1/models"), (_, "/tokenizer_info"), (_, "/tokenize"), (_, "/detokenize"), (_, "/v1/completions"),
            (_, "/v1/chat/completions"):
            throw APIError(status: 405, message: "\(request.method) is not allowed on \(request.path)")
        default:
            throw APIError(status: 404, message: "no route \(request.method) \(request.path)", code: "not_found")
        }
    }

    // MARK: - Shared request fields

    private func model(_ body: APIRequest) throws(APIError) -> (id: String, adapter: PreparedAdapter?) {
        guard let id = try body.string("model") else { return models[0] }
        guard let model = models.first(where: { $0.id == id }) else {
            throw APIError(
                status: 404, message: "the model '\(id)' does not exist; this server has \(models.map(\.id).joined(separator: ", "))",
                param: "model", code: "model_not_found")
        }
        return model
    }

    private func sampling(_ body: APIRequest) throws(APIError) -> SamplingParameters {
        try body.refuseUnsupported(["frequency_penalty": 0, "presence_penalty": 0, "logit_bias": [String: Any](), "best_of": 1])
        if let n = try body.int("n", in: 1...Int.max), n != 1 { throw .badRequest("'n' must be 1: one choice per prompt", param: "n") }
        return SamplingParameters(
            temperature: Float(try body.number("temperature", in: 0...2) ?? 1),
            topK: try body.int("top_k", in: -1...Int.max).map { max($0, 0) } ?? 0,
            topP: Float(try body.number("top_p", in: 1e-9...1) ?? 1),
            minP: Float(try body.number("min_p", in: 0...1) ?? 0),
            repetitionPenalty: Float(try body.number("repetition_penalty", in: 1e-9...100) ?? 1),
            // no seed: a fresh one, as OpenAI's sampling differs from call to call
            seed: try body.int("seed", in: Int.min...Int.max).map { UInt64(bitPattern: Int64($0)) } ?? .random(in: 0...UInt64.max))
    }

    private func tokenIDs(_ value: Any, param: String) throws(APIError) -> [Int32] {
        guard let list = value as? [Any] else { throw .badRequest("'\(param)' must be a list of token ids", param: param) }
        var ids: [Int32] = []
        for item in list {
            guard let id = APIRequest.integer(item) else { throw .badRequest("'\(param)' must be a list of token ids", param: param) }
            guard id >= 0 && id < loaded.model.config.vocabSize else {
                throw .badRequest("token id \(id) is not in the vocabulary (0..<\(loaded.model.config.vocabSize))", param: param)
            }
            ids.append(Int32(id))
        }
        return ids
    }

    private func checkLength(_ prompt: [Int32], param: String) throws(APIError) {
        guard !prompt.isEmpty else { throw .badRequest("the prompt is empty", param: param) }
        guard prompt.count <= context else {
            throw .badRequest(
                "the prompt has \(prompt.count) tokens; this server's context holds \(context)", param: param,
                code: "context_length_exceeded")
        }
    }

    private func chatPrompt(_ value: Any, addGenerationPrompt: Bool = true) throws(APIError) -> [Int32] {
        guard let list = value as? [Any], !list.isEmpty else { throw .badRequest("'messages' must be a non-empty list", param: "messages") }
        var messages: [ChatMessage] = []
        for (index, item) in list.enumerated() {
            let param = "messages[\(index)]"
            guard let message = item as? [String: Any], let roleName = message["role"] as? String else {
                throw .badRequest("\(param) must be an object with a 'role'", param: param)
            }
            let role: ChatMessage.Role
            switch roleName {
            case "system", "developer": role = .system
            case "user": role = .user
            case "assistant": role = .assistant
            default: throw .badRequest("\(param).role '\(roleName)' is not system, developer, user or assistant", param: param)
            }
            let content: String
            switch message["content"] {
            case let text as String: content = text
            case let parts as [Any]:
                content = try parts.map { part throws(APIError) -> String in
                    guard let part = part as? [String: Any], part["type"] as? String == "text", let text = part["text"] as? String else {
                        throw .badRequest("\(param).content: only text parts are supported", param: param)
                    }
                    return text
                }.joined()
            case nil where role == .assistant, is NSNull where role == .assistant: content = ""
            default: throw .badRequest("\(param).content must be a string or a list of text parts", param: param)
            }
            messages.append(ChatMessage(role: role, content: content))
        }
        guard loaded.chatTemplate != nil else { throw .badRequest("this model has no chat template; use /v1/completions") }
        return loaded.encodeChat(messages, addGenerationPrompt: addGenerationPrompt)
    }

    // MARK: - Completions

    private func completions(_ body: APIRequest) async throws(APIError) -> HTTPResponse {
        let model = try model(body)
        guard let promptValue = body.value("prompt") else { throw .badRequest("'prompt' is required", param: "prompt") }
        var prompts: [[Int32]]
        switch promptValue {
        case let text as String: prompts = [tokenizer.encode(text, parseSpecial: true, addBOS: nil)]
        case let list as [Any] where list.allSatisfy({ $0 is String }):
            prompts = list.map { tokenizer.encode($0 as! String, parseSpecial: true, addBOS: nil) }
        case let list as [Any] where list.allSatisfy({ $0 is [Any] }):
            prompts = try list.map { item throws(APIError) in try tokenIDs(item, param: "prompt") }
        case let list as [Any]: prompts = [try tokenIDs(list, param: "prompt")]
        default: throw .badRequest("'prompt' must be a string, a list of strings, a list of token ids or a list of lists", param: "prompt")
        }
        guard !prompts.isEmpty else { throw .badRequest("'prompt' is an empty list", param: "prompt") }
        for prompt in prompts { try checkLength(prompt, param: "prompt") }
        try body.refuseUnsupported(["suffix": ""])
        let echo = try body.bool("echo") ?? false
        let logprobs = try body.int("logprobs", in: 0...Self.maxAlternatives)
        let sampling = try sampling(body)
        let stop = StopConditions(maxTokens: try body.int("max_tokens", in: 0...Int.max) ?? 16, stopStrings: try body.stopStrings())
        let ready = prompts.map {
            GenerationRequest(prompt: $0, sampling: sampling, stop: stop, adapter: model.adapter, logprobs: logprobs, echo: echo)
        }
        let id = "cmpl-\(UUID().uuidString.lowercased())"
        let created = Int(Date().timeIntervalSince1970)
        let modelID = model.id
        @Sendable func head() -> [String: Any] { ["id": id, "object": "text_completion", "created": created, "model": modelID] }
        let updates = run(ready)
        if try body.bool("stream") ?? false {
            let includeUsage = (body.value("stream_options") as? [String: Any])?["include_usage"] as? Bool ?? false
            return .events { [self] emit in
                var usage = Usage()
                for await (index, update) in updates {
                    usage.count(update)
                    var choice: [String: Any] = ["index": index, "text": "", "logprobs": NSNull(), "finish_reason": NSNull()]
                    switch update {
                    case .prompt(let entries):
                        choice["text"] = tokenizer.decode(ready[index].prompt, includeSpecial: true)
                        if logprobs != nil { choice["logprobs"] = completionLogprobs(entries) }
                    case .token(_, let text, let logprob):
                        choice["text"] = text
                        if let logprob { choice["logprobs"] = completionLogprobs([logprob]) }
                    case .text(let text): choice["text"] = text
                    case .finished(let summary): choice["finish_reason"] = Self.finishReason(summary.reason)
                    }
                    emit(head().merging(["choices": [choice]]) { $1 })
                }
                if includeUsage { emit(head().merging(["choices": [Any](), "usage": usage.json]) { $1 }) }
            }
        }
        var choices = [Choice](repeating: Choice(), count: ready.count)
        var usage = Usage()
        for await (index, update) in updates {
            usage.count(update)
            choices[index].add(update)
        }
        return .json(
            head().merging([
                "choices": choices.enumerated().map { index, choice in
                    [
                        "index": index,
                        "text": (echo ? tokenizer.decode(ready[index].prompt, includeSpecial: true) : "") + choice.text,
                        "logprobs": logprobs == nil ? NSNull() : completionLogprobs(choice.promptLogprobs + choice.logprobs) as Any,
                        "finish_reason": choice.finishReason.map(Self.finishReason) ?? NSNull(),
                    ] as [String: Any]
                },
                "usage": usage.json,
            ]) { $1 })
    }

    /// What one choice gathered from its updates.
    private struct Choice {
        var promptLogprobs: [TokenLogProbability] = []
        var logprobs: [TokenLogProbability] = []
        var generated: [Int32] = []
        var text = ""
        var finishReason: GenerationSummary.Reason?

        mutating func add(_ update: GenerationUpdate) {
            switch update {
            case .prompt(let entries): promptLogprobs = entries
            case .token(let id, _, let logprob):
                generated.append(id)
                if let logprob { logprobs.append(logprob) }
            case .text: break
            case .finished(let summary):
                text = summary.text
                finishReason = summary.reason
            }
        }
    }

    /// Token counts for `usage`: the stop token counts as generated, as OpenAI counts it.
    private struct Usage {
        var prompt = 0
        var completion = 0

        mutating func count(_ update: GenerationUpdate) {
            switch update {
            case .token: completion += 1
            case .finished(let summary): prompt += summary.promptTokens
            default: break
            }
        }

        var json: [String: Any] { ["prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion] }
    }

    /// The text of one token as OpenAI's logprobs show it (special tokens by name).
    private func text(of token: Int32) -> String {
        String(decoding: tokenizer.bytes(of: token, includeSpecial: true), as: UTF8.self)
    }

    /// `choices[].logprobs` of a completion, as lm-evaluation-harness's `parse_logprobs`
    /// reads it: `token_logprobs` and `top_logprobs` are null for the prompt's first token.
    private func completionLogprobs(_ entries: [TokenLogProbability]) -> [String: Any] {
        let tokens = entries.map { text(of: $0.token) }
        var offset = 0
        var offsets: [Int] = []
        for token in tokens {
            offsets.append(offset)
            offset += token.count
        }
        return [
            "tokens": tokens,
            "token_logprobs": entries.map { entry -> Any in entry.logprob.map { Double($0) } ?? NSNull() },
            "top_logprobs": entries.map { entry -> Any in
                guard entry.logprob != nil else { return NSNull() }
                var top: [String: Double] = [:]
                for alternative in entry.top {
                    // the first of two alternatives that print alike keeps its place (the larger)
                    let text = text(of: alternative.token)
                    if top[text] == nil { top[text] = Double(alternative.logprob) }
                }
                return top
            },
            "text_offset": offsets,
        ]
    }

    static func finishReason(_ reason: GenerationSummary.Reason) -> String {
        switch reason {
        case .stopToken, .stopString: "stop"
        case .maxTokens, .contextFull: "length"
        case .cancelled: "cancelled"
        }
    }

    // MARK: - Chat completions

    private func chatCompletions(_ body: APIRequest) async throws(APIError) -> HTTPResponse {
        let model = try model(body)
        guard let messages = body.value("messages") else { throw .badRequest("'messages' is required", param: "messages") }
        let prompt = try chatPrompt(messages)
        try checkLength(prompt, param: "messages")
        let wantsLogprobs = try body.bool("logprobs") ?? false
        let top = try body.int("top_logprobs", in: 0...Self.maxAlternatives)
        if top != nil && !wantsLogprobs { throw .badRequest("'top_logprobs' needs 'logprobs': true", param: "top_logprobs") }
        var maxTokens = context - prompt.count
        if let limit = try body.int("max_completion_tokens", in: 0...Int.max) {
            maxTokens = limit
        } else if let limit = try body.int("max_tokens", in: 0...Int.max) {
            maxTokens = limit
        }
        let request = GenerationRequest(
            prompt: prompt, sampling: try sampling(body), stop: StopConditions(maxTokens: maxTokens, stopStrings: try body.stopStrings()),
            adapter: model.adapter, logprobs: wantsLogprobs ? (top ?? 0) : nil)
        let id = "chatcmpl-\(UUID().uuidString.lowercased())"
        let created = Int(Date().timeIntervalSince1970)
        let updates = run([request])
        if try body.bool("stream") ?? false {
            let includeUsage = (body.value("stream_options") as? [String: Any])?["include_usage"] as? Bool ?? false
            let modelID = model.id
            return .events { [self] emit in
                func chunk(_ delta: [String: Any], logprobs: Any = NSNull(), finish: Any = NSNull()) {
                    emit([
                        "id": id, "object": "chat.completion.chunk", "created": created, "model": modelID,
                        "choices": [["index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish]],
                    ])
                }
                var usage = Usage()
                chunk(["role": "assistant", "content": ""])
                for await (_, update) in updates {
                    usage.count(update)
                    switch update {
                    case .prompt: break
                    case .token(let token, let text, let logprob):
                        // the stop token ends the answer without a chunk of its own
                        guard !isStop(token, request), !text.isEmpty || logprob != nil else { break }
                        chunk(["content": text], logprobs: logprob.map { chatLogprobs([$0]) } ?? NSNull())
                    case .text(let text): chunk(["content": text])
                    case .finished(let summary): chunk([:], finish: Self.finishReason(summary.reason))
                    }
                }
                if includeUsage {
                    emit([
                        "id": id, "object": "chat.completion.chunk", "created": created, "model": modelID, "choices": [Any](),
                        "usage": usage.json,
                    ])
                }
            }
        }
        var choice = Choice()
        var usage = Usage()
        for await (_, update) in updates {
            usage.count(update)
            choice.add(update)
        }
        // the stop token is not part of a chat answer's logprobs
        let entries = zip(choice.generated, choice.logprobs).filter { !isStop($0.0, request) }.map(\.1)
        return .json([
            "id": id, "object": "chat.completion", "created": created, "model": model.id,
            "choices": [
                [
                    "index": 0, "message": ["role": "assistant", "content": choice.text],
                    "logprobs": wantsLogprobs ? chatLogprobs(entries) : NSNull() as Any,
                    "finish_reason": choice.finishReason.map(Self.finishReason) ?? NSNull(),
                ] as [String: Any]
            ],
            "usage": usage.json,
        ])
    }

    private func isStop(_ token: Int32, _ request: GenerationRequest) -> Bool {
        (request.stop.stopTokens ?? tokenizer.endOfGenerationTokens).contains(token)
    }

    /// `choices[].logprobs` of a chat completion: `{"content": [{token, logprob, bytes, top_logprobs}]}`.
    private func chatLogprobs(_ entries: [TokenLogProbability]) -> [String: Any] {
        func item(_ token: Int32, _ logprob: Float) -> [String: Any] {
            let bytes = tokenizer.bytes(of: token, includeSpecial: true)
            return ["token": String(decoding: bytes, as: UTF8.self), "logprob": Double(logprob), "bytes": bytes.map(Int.init)]
        }
        return [
            "content": entries.map { entry in
                item(entry.token, entry.logprob ?? 0).merging(["top_logprobs": entry.top.map { item($0.token, $0.logprob) }]) { $1 }
            }
        ]
    }

    // MARK: - Running requests

    /// Submits the requests together and streams every update tagged with its request's
    /// index; the stream ends when all have finished. Ending it early (the client went
    /// away) cancels them.
    private func run(_ requests: [GenerationRequest]) -> AsyncStream<(Int, GenerationUpdate)> {
        AsyncStream { continuation in
            let remaining = Counter(requests.count)
            let tickets = requests.enumerated().map { index, request in
                service.submit(request) { update in
                    continuation.yield((index, update))
                    if case .finished = update, remaining.decrement() == 0 { continuation.finish() }
                }
            }
            continuation.onTermination = { _ in
                for ticket in tickets { ticket.cancel() }
            }
        }
    }
}

/// A count shared between the service's thread and the stream's consumer.
private final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Int

    init(_ value: Int) { self.value = value }

    func decrement() -> Int {
        lock.withLock {
            value -= 1
            return value
        }
    }
}

extension HTTPResponse {
    static func json(_ object: [String: Any], status: Int = 200) -> HTTPResponse {
        HTTPResponse(status: .init(statusCode: status), contentType: "application/json", body: .whole(Array(encodeJSON(object))))
    }

    static func error(_ error: APIError) -> HTTPResponse { .json(error.json, status: error.status) }

    /// Server-sent events: `produce` emits JSON objects, each sent as `data: {…}`; the
    /// stream ends with `data: [DONE]`.
    static func events(_ produce: @escaping @Sendable (_ emit: (([String: Any]) -> Void)) async -> Void) -> HTTPResponse {
        let stream = AsyncStream<String> { continuation in
            let task = Task {
                await produce { object in continuation.yield("data: \(String(decoding: encodeJSON(object), as: UTF8.self))\n\n") }
                continuation.yield("data: [DONE]\n\n")
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
        return HTTPResponse(status: .ok, contentType: "text/event-stream", body: .events(stream))
    }
}

func encodeJSON(_ object: [String: Any]) -> Data {
    (try? JSONSerialization.data(withJSONObject: object, options: [.withoutEscapingSlashes])) ?? Data("{}".utf8)
}
