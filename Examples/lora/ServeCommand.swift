import ArgumentParser
import Foundation
import LoRACore

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the model over OpenAI's HTTP API (completions with echo and logprobs, chat, streaming), each adapter a model id.",
        discussion: """
            Endpoints: POST /v1/completions, POST /v1/chat/completions, GET /v1/models, GET /health (503 while \
            loading), and vLLM's GET /tokenizer_info, POST /tokenize, POST /detokenize. Concurrent requests decode \
            together; a request's output does not depend on the others.
            """
    )

    @OptionGroup var model: ModelOptions
    @Option(
        name: .customLong("adapter"),
        help: ArgumentHelp("A PEFT adapter folder served as model id NAME (repeatable).", valueName: "NAME=DIR"))
    var adapters: [String] = []
    @Option(help: "The base model's id (default: the model file's name without its extension).") var name: String?
    @Option(help: "Address to listen on (loopback by default; 0.0.0.0 for every interface).") var host = "127.0.0.1"
    @Option(help: "Port (0: any free port; the one bound is printed).") var port = 8080
    @Option(help: "Require `Authorization: Bearer KEY` on every endpoint but /health.") var apiKey: String?
    @Option(help: "Sequences decoded together.") var batch = 16
    @Option(help: "Most tokens (prompt and answer) of one sequence (default: the model's context).") var context: Int?
    @Option(help: "Largest request body, in bytes (413 above it).") var maxBodyBytes = 8 << 20

    func validate() throws {
        for adapter in adapters where !adapter.contains("=") || adapter.hasPrefix("=") || adapter.hasSuffix("=") {
            throw ValidationError("--adapter \(adapter): expected NAME=DIR")
        }
        if batch < 1 { throw ValidationError("--batch must be at least 1") }
        if let context, context < 2 { throw ValidationError("--context must be at least 2") }
        if !(0...65535).contains(port) { throw ValidationError("--port must be in 0...65535") }
    }

    func run() async throws {
        let path = try model.path
        let baseID = name ?? URL(fileURLWithPath: path).deletingPathExtension().lastPathComponent
        let named = adapters.map { (name: String($0.prefix { $0 != "=" }), folder: String($0.drop { $0 != "=" }.dropFirst())) }
        if let repeated = Dictionary(grouping: named.map(\.name) + [baseID], by: { $0 }).first(where: { $0.value.count > 1 }) {
            throw ValidationError("the model id '\(repeated.key)' is used twice")
        }
        let state = ServerState()
        let apiKey = apiKey
        let server = HTTPServer(
            host: host, port: port, maxBodyBytes: maxBodyBytes,
            respond: { request in await state.respond(request, apiKey: apiKey) },
            tooLarge: { .error(APIError(status: 413, message: "the body is larger than this server accepts", code: "body_too_large")) })
        // listen first, so /health answers 503 while the weights load
        let (listening, signalListening) = AsyncStream<Int>.makeStream()
        let serving = Task {
            try await server.run { port in
                signalListening.yield(port)
                signalListening.finish()
            }
        }
        for await bound in listening {
            errorOutput.write(Data("listening on http://\(host):\(bound)\n".utf8))
        }
        let (options, batch, context) = (model, batch, context)
        let api = try await Task.detached {
            try reportingErrors {
                let loaded = try options.load()
                var models: [(id: String, adapter: PreparedAdapter?)] = [(baseID, nil)]
                for (name, folder) in named {
                    let peft = try PEFTAdapter(folder: folder)
                    models.append((name, try loaded.model.prepare(peft)))
                    errorOutput.write(Data("adapter \(name): \(folder), rank \(peft.rank), \(peft.modules.count) projections\n".utf8))
                }
                let service = GenerationService(
                    generator: Generator(model: loaded.model, tokenizer: loaded.tokenizer), batchSize: batch, context: context)
                return OpenAIAPI(loaded: loaded, service: service, models: models)
            }
        }.value
        state.ready(api)
        errorOutput.write(Data("ready: \(api.models.map(\.id).joined(separator: ", ")); batch \(batch), context \(api.context)\n".utf8))
        try await serving.value
    }
}

/// Loading, then serving: what /health reports, and what every other route waits for.
final class ServerState: @unchecked Sendable {
    private let lock = NSLock()
    private var loaded: OpenAIAPI?

    func ready(_ api: OpenAIAPI) { lock.withLock { loaded = api } }

    func respond(_ request: HTTPRequest, apiKey: String?) async -> HTTPResponse {
        let start = Date()
        let api = lock.withLock { loaded }
        let response: HTTPResponse
        do {
            response = try await route(request, api: api, apiKey: apiKey)
        } catch {
            response = .error(error)
        }
        if request.path != "/health" {
            errorOutput.write(
                Data(
                    String(
                        format: "%@ %@ %d %.0f ms\n", "\(request.method)", request.path, response.status.code,
                        Date().timeIntervalSince(start) * 1000
                    )
                    .utf8))
        }
        return response
    }

    private func route(_ request: HTTPRequest, api: OpenAIAPI?, apiKey: String?) async throws(APIError) -> HTTPResponse {
        if request.path == "/health" {
            guard request.method == .GET else { throw APIError(status: 405, message: "\(request.method) is not allowed on /health") }
            guard let api else { return .json(["status": "loading"], status: 503) }
            let load = api.service.load
            return .json(["status": "ok", "running": load.running, "waiting": load.waiting])
        }
        if let apiKey, request.headers.first(name: "authorization") != "Bearer \(apiKey)" {
            throw APIError(status: 401, message: "a missing or wrong API key (send Authorization: Bearer KEY)", code: "invalid_api_key")
        }
        guard let api else { throw APIError(status: 503, message: "the model is still loading", type: "server_error", code: "loading") }
        return try await api.respond(request)
    }
}
