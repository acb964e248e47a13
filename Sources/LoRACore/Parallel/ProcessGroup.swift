import CKernels
import Foundation

/// The processes of one job: this process alone, or the ranks an MPI launcher started
/// (`mpirun -np N`, `srun --mpi=pmix`). Every rank holds the whole frozen model and runs the
/// same program; work items (micro-batches, evaluation prompts) are dealt out by index,
/// item `i` to rank `i % size`, and combined in index order, so results do not depend on
/// how many processes there are.
///
/// Every rank must call the same collectives in the same order, and an error on one rank
/// must end the job (`abort(code:)`): the others would wait for it forever. Open MPI is
/// loaded at run time (libmpi.so.40): without a launcher nothing of MPI is touched, and a
/// build without MPI installed runs as one process.
public final class ProcessGroup: @unchecked Sendable {
    public let rank: Int
    public let size: Int

    /// One process: every collective is the identity.
    public static let single = ProcessGroup(rank: 0, size: 1)

    private init(rank: Int, size: Int) {
        self.rank = rank
        self.size = size
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var launchedGroup: ProcessGroup?

    /// The group this process was launched in: its MPI job when a launcher's variables are
    /// set (Open MPI's `OMPI_COMM_WORLD_SIZE`, PMIx's `PMIX_RANK`), else `single`. MPI is
    /// initialized on the first call and finalized when the process exits.
    public static func launched(environment: [String: String] = ProcessInfo.processInfo.environment) throws(LoRAError)
        -> ProcessGroup
    {
        lock.lock()
        defer { lock.unlock() }
        if let launchedGroup { return launchedGroup }
        let launcher = ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"].first { environment[$0] != nil }
        guard let launcher else {
            launchedGroup = .single
            return .single
        }
        var rank: Int32 = 0
        var size: Int32 = 1
        var message = [CChar](repeating: 0, count: 512)
        guard ck_mpi_init(&rank, &size, &message, message.count) == 0 else {
            let reason = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw .processGroup(problem: "started by an MPI launcher (\(launcher) is set) but \(reason)")
        }
        atexit { _ = ck_mpi_finalize() }
        let group = ProcessGroup(rank: Int(rank), size: Int(size))
        launchedGroup = group
        return group
    }

    /// Rank 0 writes the files and prints the progress of a job.
    public var isLeader: Bool { rank == 0 }

    /// The work items of `count` that are this rank's, in index order.
    public func share(of count: Int) -> StrideTo<Int> { stride(from: rank, to: count, by: size) }

    /// Ends every process of the job with `code`: for a failure on one rank that the others,
    /// waiting in a collective, cannot learn of.
    public func abort(code: Int32) -> Never {
        ck_mpi_abort(code)
        exit(code)
    }

    // MARK: Collectives

    /// Every rank's `bytes` (any length), by rank.
    public func allGather(_ bytes: [UInt8]) throws(LoRAError) -> [[UInt8]] {
        guard size > 1 else { return [bytes] }
        let lengths = try allGatherFixed(withUnsafeBytes(of: UInt64(bytes.count).littleEndian, Array.init), bytes: 8)
            .map { Int($0.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }) }
        let longest = lengths.max() ?? 0
        let padded = bytes + [UInt8](repeating: 0, count: longest - bytes.count)
        return zip(try allGatherFixed(padded, bytes: longest), lengths).map { Array($0.prefix($1)) }
    }

    private func allGatherFixed(_ bytes: [UInt8], bytes count: Int) throws(LoRAError) -> [[UInt8]] {
        var all = [UInt8](repeating: 0, count: count * size)
        let status = bytes.withUnsafeBytes { send in
            all.withUnsafeMutableBytes { ck_mpi_allgather(send.baseAddress, count, $0.baseAddress) }
        }
        guard status == 0 else { throw .processGroup(problem: "MPI_Allgather of \(count) bytes failed") }
        return (0..<size).map { Array(all[$0 * count..<($0 + 1) * count]) }
    }

    /// Every rank's values of a Codable type, by rank.
    public func allGather<T: Codable>(_ value: T) throws(LoRAError) -> [T] {
        guard size > 1 else { return [value] }
        let encoded = (try? JSONEncoder().encode(value)).map(Array.init) ?? []
        var values: [T] = []
        for (index, bytes) in try allGather(encoded).enumerated() {
            guard let decoded = try? JSONDecoder().decode(T.self, from: Data(bytes)) else {
                throw .processGroup(problem: "rank \(index) sent what rank \(rank) cannot read as \(T.self)")
            }
            values.append(decoded)
        }
        return values
    }

    /// Rank 0's `value` on every rank (what the other ranks pass is ignored): state only
    /// rank 0 reads, such as the items a resumed evaluation already has.
    public func fromLeader<T: Codable>(_ value: T) throws(LoRAError) -> T {
        guard size > 1 else { return value }
        var bytes = isLeader ? (try? JSONEncoder().encode(value)).map(Array.init) ?? [] : []
        var length = UInt64(bytes.count)
        guard ck_mpi_bcast(&length, 8, 0) == 0 else { throw .processGroup(problem: "MPI_Bcast failed") }
        if !isLeader { bytes = [UInt8](repeating: 0, count: Int(length)) }
        guard bytes.withUnsafeMutableBytes({ ck_mpi_bcast($0.baseAddress, $0.count, 0) }) == 0 else {
            throw .processGroup(problem: "MPI_Bcast of \(length) bytes failed")
        }
        guard let decoded = try? JSONDecoder().decode(T.self, from: Data(bytes)) else {
            throw .processGroup(problem: "rank \(rank) cannot read rank 0's \(T.self)")
        }
        return decoded
    }

    /// The values of `count` work items, each computed by the rank `share(of:)` gave it,
    /// in index order on every rank. `mine` holds this rank's, in its share's order.
    public func gatherItems<T: Codable>(_ mine: [T], count: Int) throws(LoRAError) -> [T] {
        guard size > 1 else { return mine }
        let byRank = try allGather(mine)
        return try (0..<count).map { (index: Int) throws(LoRAError) -> T in
            let owner = index % size
            let position = index / size
            guard position < byRank[owner].count else {
                throw .processGroup(problem: "rank \(owner) sent \(byRank[owner].count) items, item \(index) is missing")
            }
            return byRank[owner][position]
        }
    }

    /// Σ over `count` work items of `length`-float vectors (a step's micro-batch gradients),
    /// added in index order, (((v0 + v1) + v2) + …), so the sum is the same bits whatever the
    /// number of ranks. Each rank adds its share's vectors as it computes them; `result`
    /// then lets each rank add one segment of the vector across all items (an all-to-all
    /// moves the segments) and gathers the segments: 2·(N−1)/N of a vector per item crosses
    /// the network, as with a ring all-reduce.
    public final class OrderedSum {
        public let group: ProcessGroup
        public let count: Int
        public let length: Int
        private let bounds: [Int]
        /// One rank: the running sum. Several: this rank's vectors, segment by segment in
        /// destination order, each segment's vectors in share order (the all-to-all's input).
        private var values: [Float] = []
        private var added = 0

        public init(group: ProcessGroup, count: Int, length: Int) {
            self.group = group
            self.count = count
            self.length = length
            bounds = (0...group.size).map { $0 * length / group.size }
            if group.size > 1 { values = [Float](repeating: 0, count: mine * length) }
        }

        private var mine: Int { items(of: group.rank) }
        private func segment(_ r: Int) -> Range<Int> { bounds[r]..<bounds[r + 1] }
        /// Items of rank r's share.
        private func items(of r: Int) -> Int { (count - r + group.size - 1) / group.size }

        /// Adds the next vector of this rank's share.
        public func add(_ vector: [Float]) {
            precondition(vector.count == length && added < mine, "OrderedSum: vector \(added + 1) of \(mine), \(vector.count) values")
            if group.size == 1 {
                if added == 0 { values = vector } else { Kernels.add(vector[...], into: &values) }
            } else {
                for d in 0..<group.size {
                    let start = bounds[d] * mine + added * segment(d).count
                    values.replaceSubrange(start..<start + segment(d).count, with: vector[segment(d)])
                }
            }
            added += 1
        }

        /// The sum, on every rank, once every rank has added its share.
        public func result() throws(LoRAError) -> [Float] {
            precondition(added == mine, "OrderedSum: \(added) of \(mine) vectors added")
            let size = group.size
            guard size > 1 else { return added == 0 ? [Float](repeating: 0, count: length) : values }
            let sendCounts = (0..<size).map { Int64(segment($0).count * mine) }
            let sendOffsets = (0..<size).map { Int64(bounds[$0] * mine) }
            let own = segment(group.rank)
            let recvCounts = (0..<size).map { Int64(items(of: $0) * own.count) }
            var recvOffsets: [Int64] = [0]
            for s in 0..<size - 1 { recvOffsets.append(recvOffsets[s] + recvCounts[s]) }
            var received = [Float](repeating: 0, count: Int(recvCounts.reduce(0, +)))
            let moved = received.withUnsafeMutableBufferPointer { recv in
                ck_mpi_alltoallv_float(values, sendCounts, sendOffsets, recv.baseAddress, recvCounts, recvOffsets)
            }
            guard moved == 0 else { throw .processGroup(problem: "MPI_Alltoallv of \(length)-float vectors' segments failed") }
            values = []
            var sum = [Float](repeating: 0, count: own.count)
            for index in 0..<count {
                let start = Int(recvOffsets[index % size]) + (index / size) * own.count
                if index == 0 {
                    sum = Array(received[start..<start + own.count])
                } else {
                    Kernels.add(received[start..<start + own.count], into: &sum)
                }
            }
            var result = [Float](repeating: 0, count: length)
            let counts = (0..<size).map { Int64(segment($0).count) }
            let offsets = (0..<size).map { Int64(bounds[$0]) }
            let gathered = result.withUnsafeMutableBufferPointer { ck_mpi_allgatherv_float(sum, counts, offsets, $0.baseAddress) }
            guard gathered == 0 else { throw .processGroup(problem: "MPI_Allgatherv of the summed segments failed") }
            return result
        }
    }

    /// Stops every rank with the same error when any rank's `facts` differ from rank 0's
    /// (model, data, settings: what must agree before a job computes anything together).
    public func checkAgreement(_ facts: [(name: String, value: String)]) throws(LoRAError) {
        guard size > 1 else { return }
        let all = try allGather(facts.map(\.value))
        for (other, values) in all.enumerated().dropFirst() {
            for (index, fact) in facts.enumerated() where values[index] != all[0][index] {
                throw .ranksDisagree(rank: other, what: fact.name, leader: all[0][index], other: values[index])
            }
        }
    }

    /// True on every rank when it is true on any (a stop request seen by one rank).
    public func any(_ flag: Bool) throws(LoRAError) -> Bool {
        guard size > 1 else { return flag }
        return try allGatherFixed([flag ? 1 : 0], bytes: 1).contains { $0[0] != 0 }
    }
}
