import Foundation

/// Generation for requests that arrive from many threads or tasks at any time: one thread
/// owns the model and a `GenerationBatch`, and a request joins the batch at its next step
/// (continuous batching). Requests for different adapters share the steps, each adapter's
/// sequences in their own forward pass. A request's output does not depend on the others.
public final class GenerationService: @unchecked Sendable {
    public let generator: Generator
    public let batchSize: Int
    public let context: Int

    private let lock = NSCondition()
    private var queue: [(request: GenerationRequest, ticket: Ticket, onUpdate: @Sendable (GenerationUpdate) -> Void)] = []
    private var stopping = false
    private var running = 0

    /// A queued or running request; `cancel()` finishes it as cancelled at the next step
    /// (or drops it if it has not started).
    public final class Ticket: @unchecked Sendable {
        private let lock = NSLock()
        private var cancelled = false

        public func cancel() { lock.withLock { cancelled = true } }
        public var isCancelled: Bool { lock.withLock { cancelled } }
    }

    /// `context` caps the tokens (prompt and generated) of one sequence, below the model's own.
    public init(generator: Generator, batchSize: Int, context: Int? = nil) {
        precondition(batchSize > 0, "GenerationService: batch size \(batchSize)")
        self.generator = generator
        self.batchSize = batchSize
        self.context = min(context ?? .max, generator.model.config.maxPositionEmbeddings)
        let thread = Thread { self.run() }
        thread.name = "generation"
        thread.start()
    }

    /// Queues a request. `onUpdate` is called on the service's thread, in order, ending with
    /// `.finished` (also for a cancelled request).
    @discardableResult
    public func submit(_ request: GenerationRequest, onUpdate: @escaping @Sendable (GenerationUpdate) -> Void) -> Ticket {
        precondition(
            !request.prompt.isEmpty && request.prompt.count <= context,
            "GenerationService: an empty prompt, or one longer than the context of \(context)")
        let ticket = Ticket()
        lock.withLock {
            queue.append((request, ticket, onUpdate))
            lock.signal()
        }
        return ticket
    }

    /// The same as a stream; ending the stream early (a cancelled task, a dropped
    /// consumer) cancels the request.
    public func stream(_ request: GenerationRequest) -> AsyncStream<GenerationUpdate> {
        AsyncStream { continuation in
            let ticket = submit(request) { update in
                continuation.yield(update)
                if case .finished = update { continuation.finish() }
            }
            continuation.onTermination = { _ in ticket.cancel() }
        }
    }

    /// Sequences in the batch now, and requests waiting for a slot.
    public var load: (running: Int, waiting: Int) { lock.withLock { (running, queue.count) } }

    /// Cancels what runs and what waits, and ends the thread (which holds the service
    /// until then).
    public func shutdown() {
        lock.withLock {
            stopping = true
            lock.signal()
        }
    }

    private func run() {
        let batch = GenerationBatch(generator: generator, capacity: batchSize, context: context)
        while true {
            var arrived: [(request: GenerationRequest, ticket: Ticket, onUpdate: @Sendable (GenerationUpdate) -> Void)] = []
            lock.withLock {
                while queue.isEmpty && batch.isEmpty && !stopping { lock.wait() }
                arrived = Array(queue.prefix(batch.room))
                queue.removeFirst(arrived.count)
            }
            if lock.withLock({ stopping }) {
                batch.cancelAll()
                for waiting in arrived + lock.withLock({ queue }) {
                    waiting.onUpdate(.finished(.cancelled(promptTokens: waiting.request.prompt.count)))
                }
                return
            }
            for (request, ticket, onUpdate) in arrived {
                if ticket.isCancelled {
                    onUpdate(.finished(.cancelled(promptTokens: request.prompt.count)))
                    continue
                }
                batch.add(request) { update in
                    onUpdate(update)
                    return !ticket.isCancelled
                }
            }
            lock.withLock { running = batch.count }
            if !batch.isEmpty { batch.step() }
            lock.withLock { running = batch.count }
        }
    }
}
