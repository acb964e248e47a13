import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// One HTTP request, its body read whole.
struct HTTPRequest: Sendable {
    let method: HTTPMethod
    /// The path without its query.
    let path: String
    let headers: HTTPHeaders
    let body: [UInt8]
}

/// What a route answers: a whole body, or server-sent events written as they come.
struct HTTPResponse: Sendable {
    enum Body: Sendable {
        case whole([UInt8])
        /// Each element is written (and flushed) as it arrives; a client that goes away ends
        /// the iteration, which cancels the work behind it.
        case events(AsyncStream<String>)
    }

    var status: HTTPResponseStatus
    var contentType: String
    var body: Body
}

/// An HTTP/1.1 server on SwiftNIO: connections in parallel, requests on one connection in
/// turn (keep-alive), a body size limit (413), and a request's work cancelled when its
/// client disconnects.
struct HTTPServer {
    let host: String
    let port: Int
    let maxBodyBytes: Int
    let respond: @Sendable (HTTPRequest) async -> HTTPResponse
    /// What answers a body over `maxBodyBytes`.
    let tooLarge: @Sendable () -> HTTPResponse

    /// Binds, calls `onListening` with the bound port, and serves until the task is cancelled.
    func run(onListening: (Int) -> Void) async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(wrappingChannelSynchronously: channel)
                }
            }
        onListening(server.channel.localAddress?.port ?? port)
        try await withThrowingDiscardingTaskGroup { group in
            try await server.executeThenClose { connections in
                for try await connection in connections {
                    group.addTask { await serve(connection) }
                }
            }
        }
    }

    private func serve(_ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>) async {
        // the request being answered, cancelled if the connection closes under it
        let current = CurrentWork()
        connection.channel.closeFuture.whenComplete { _ in current.cancel() }
        try? await connection.executeThenClose { inbound, outbound in
            var head: HTTPRequestHead?
            var body: [UInt8] = []
            var overLimit = false
            for try await part in inbound {
                switch part {
                case .head(let h):
                    head = h
                    body = []
                    overLimit = false
                case .body(var buffer):
                    if body.count + buffer.readableBytes > maxBodyBytes {
                        overLimit = true
                    } else {
                        body += buffer.readBytes(length: buffer.readableBytes) ?? []
                    }
                case .end:
                    guard let h = head else { continue }
                    let path = String(h.uri.prefix { $0 != "?" })
                    let request = HTTPRequest(method: h.method, path: path, headers: h.headers, body: body)
                    let keepAlive = h.isKeepAlive && !overLimit
                    let response = overLimit ? tooLarge() : try await current.run { await respond(request) }
                    try await write(response, version: h.version, keepAlive: keepAlive, to: outbound, current: current)
                    if !keepAlive { return }
                }
            }
        }
    }

    private func write(
        _ response: HTTPResponse, version: HTTPVersion, keepAlive: Bool, to outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>,
        current: CurrentWork
    ) async throws {
        var headers = HTTPHeaders([("content-type", response.contentType)])
        if !keepAlive { headers.add(name: "connection", value: "close") }
        switch response.body {
        case .whole(let bytes):
            headers.add(name: "content-length", value: "\(bytes.count)")
            try await outbound.write(.head(HTTPResponseHead(version: version, status: response.status, headers: headers)))
            try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: bytes))))
            try await outbound.write(.end(nil))
        case .events(let events):
            headers.add(name: "cache-control", value: "no-cache")
            try await outbound.write(.head(HTTPResponseHead(version: version, status: response.status, headers: headers)))
            try await current.run {
                for await event in events {
                    try await outbound.write(.body(.byteBuffer(ByteBuffer(string: event))))
                }
            }
            try await outbound.write(.end(nil))
        }
    }
}

/// The task answering a connection's current request, for cancelling it from NIO's thread
/// when the connection closes.
private final class CurrentWork: @unchecked Sendable {
    private let lock = NSLock()
    private var cancelCurrent: (@Sendable () -> Void)?
    private var closed = false

    /// Runs `work` in its own task, cancelled if the connection closes meanwhile.
    func run<T: Sendable>(_ work: @escaping @Sendable () async throws -> T) async throws -> T {
        let task = Task { try await work() }
        let open = lock.withLock {
            cancelCurrent = { task.cancel() }
            return !closed
        }
        if !open { task.cancel() }
        defer { lock.withLock { cancelCurrent = nil } }
        return try await task.value
    }

    func cancel() {
        lock.withLock {
            closed = true
            cancelCurrent?()
        }
    }
}
