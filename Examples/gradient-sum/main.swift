// Times the sum of a step's adapter gradients across the ranks of a job
// (`ProcessGroup.OrderedSum`, the data-parallel trainer's one collective a step), for a
// vector the size of Llama-2-7B's rank-16 adapter on all seven projections, one
// micro-batch a rank; prints one JSON line with the best of the repeats:
//
//     mpirun -np 2 .build/release/gradient-sum [floats] [repeats]
import Foundation
import LoRACore

let arguments = CommandLine.arguments
let length = arguments.count > 1 ? Int(arguments[1]) ?? 0 : 39_976_960
let repeats = arguments.count > 2 ? Int(arguments[2]) ?? 0 : 5
guard length > 0, repeats > 0 else {
    FileHandle.standardError.write(Data("usage: gradient-sum [floats > 0] [repeats > 0]\n".utf8))
    exit(2)
}
do {
    let group = try ProcessGroup.launched()
    let vector = [Float](repeating: Float(group.rank + 1), count: length)
    let expected = Float(group.size * (group.size + 1) / 2)
    var best = Double.infinity
    for _ in 0..<repeats {
        let start = Date()
        let sum = ProcessGroup.OrderedSum(group: group, count: group.size, length: length)
        sum.add(vector)
        let result = try sum.result()
        best = min(best, Date().timeIntervalSince(start))
        guard result.first == expected, result.last == expected else {
            FileHandle.standardError.write(Data("gradient-sum: rank \(group.rank) got \(result[0]), not \(expected)\n".utf8))
            group.abort(code: 1)
        }
    }
    if group.isLeader {
        print("{\"ranks\":\(group.size),\"floats\":\(length),\"seconds\":\(best)}")
    }
} catch {
    FileHandle.standardError.write(Data("gradient-sum: \(error)\n".utf8))
    exit(1)
}
