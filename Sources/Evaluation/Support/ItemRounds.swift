import LoRACore

/// Work items dealt out across the ranks of a job a round at a time: in a round of
/// `perRank` × N items, item i goes to rank i % N, and every rank then receives the round's
/// results in item order to record (rank 0 into the item file). One process runs the same
/// rounds alone, so the item file has the same lines in the same order for any number of
/// processes, and a stop or a kill loses at most the round under way.
struct ItemRounds {
    let group: ProcessGroup
    let perRank: Int

    /// Returns false when `shouldStop` (on any rank) stopped it before the last round.
    func run<Item, Result: Codable>(
        _ items: [Item], shouldStop: () -> Bool, compute: ([Item]) throws(EvaluationError) -> [Result],
        record: ([Result]) throws(EvaluationError) -> Void
    ) throws(EvaluationError) -> Bool {
        let roundSize = max(1, perRank) * group.size
        for start in stride(from: 0, to: items.count, by: roundSize) {
            let round = Array(items[start..<min(start + roundSize, items.count)])
            let stop: Bool
            do { stop = try group.any(shouldStop()) } catch { throw .model(error) }
            if stop { return false }
            let results = try compute(group.share(of: round.count).map { round[$0] })
            let gathered: [Result]
            do { gathered = try group.gatherItems(results, count: round.count) } catch { throw .model(error) }
            try record(gathered)
        }
        return true
    }
}
