import Foundation

/// A LoRA adapter on one projection: y += scale · (drop(x)·Aᵀ)·Bᵀ with A [rank, in],
/// B [out, rank] and scale = alpha / rank (alpha / √rank with rsLoRA), as PEFT computes it
/// (<doc:AdapterFormats>). Trainable: `backward` accumulates dL/dA and dL/dB.
public final class LoRAAdapter: LinearAdapter, @unchecked Sendable {
    public let a: Tensor // [rank, in]
    public let b: Tensor // [out, rank]
    public let scale: Float
    /// Dropout probability on the adapter's input (PEFT's lora_dropout), while training only.
    public let dropout: Float
    /// Seed of the dropout mask of the current step, set by the trainer before a forward and
    /// its backward (which draws the same mask again); nil means evaluation: no dropout.
    public var dropoutSeed: UInt64?
    /// dL/dA and dL/dB, summed by `backward` until the optimizer takes them.
    public private(set) lazy var gradientA = Tensor(zeros: a.shape)
    public private(set) lazy var gradientB = Tensor(zeros: b.shape)

    public init(a: Tensor, b: Tensor, scale: Float, dropout: Float = 0) {
        precondition(
            a.rank == 2 && b.rank == 2 && a.shape[0] == b.shape[1],
            "LoRAAdapter: A \(a.shape) and B \(b.shape) do not share a rank")
        precondition(dropout >= 0 && dropout < 1, "LoRAAdapter: dropout \(dropout) outside [0, 1)")
        self.a = a
        self.b = b
        self.scale = scale
        self.dropout = dropout
    }

    /// A fresh adapter initialized as PEFT's default (init_lora_weights=True): A from
    /// kaiming_uniform(a=√5), that is U(−1/√in, 1/√in), and B zero, so it starts as an exact
    /// no-op.
    public convenience init(
        inFeatures: Int, outFeatures: Int, rank: Int, alpha: Float, rsLoRA: Bool = false,
        dropout: Float = 0, seed: UInt64
    ) {
        let bound = 1 / Float(inFeatures).squareRoot()
        self.init(
            a: .uniform([rank, inFeatures], in: -bound...bound, seed: seed), b: Tensor(zeros: [outFeatures, rank]),
            scale: Self.scale(alpha: alpha, rank: rank, rsLoRA: rsLoRA), dropout: dropout)
    }

    /// The scale PEFT applies to an adapter's output: alpha/r, or alpha/√r with rsLoRA.
    public static func scale(alpha: Float, rank: Int, rsLoRA: Bool) -> Float {
        alpha / (rsLoRA ? Float(rank).squareRoot() : Float(rank))
    }

    public var rank: Int { a.shape[0] }
    public var inFeatures: Int { a.shape[1] }
    public var outFeatures: Int { b.shape[0] }

    /// x as A sees it: with the dropout mask of `dropoutSeed` applied.
    private func dropped(_ x: Tensor) -> Tensor {
        let matrix = x.reshaped([x.rowCount, x.rowLength])
        guard let dropoutSeed, dropout > 0 else { return matrix }
        return Kernels.dropout(matrix, probability: dropout, seed: dropoutSeed)
    }

    /// Aᵀ and Bᵀ for the inference kernel, with the versions of A and B they were taken from:
    /// taken again after the optimizer (or anyone) writes A or B.
    private var transposes: (aT: Tensor, bT: Tensor, versions: (a: Int, b: Int))?
    private let transposesLock = NSLock()

    private func currentTransposes() -> (aT: Tensor, bT: Tensor) {
        transposesLock.lock()
        defer { transposesLock.unlock() }
        let versions = (a: a.buffer.version, b: b.buffer.version)
        if let transposes, transposes.versions == versions { return (transposes.aT, transposes.bT) }
        let aT = a.transposed()
        let bT = b.transposed()
        transposes = (aT, bT, versions)
        return (aT, bT)
    }

    private func releaseTransposes() {
        transposesLock.lock()
        transposes = nil
        transposesLock.unlock()
    }

    public func addOutput(of x: Tensor, to y: Tensor) {
        guard dropoutSeed != nil else {
            // Evaluation: every row's sums in a fixed order, so a sequence's output does not
            // depend on the batch it runs in (sgemm's would).
            let (aT, bT) = currentTransposes()
            Kernels.loraAccumulate(x, aT: aT, bT: bT, scale: scale, into: y)
            return
        }
        // training: the next step makes cached transposes stale, so they are taken for this
        // product only (the same kernel as evaluation, so u is the bits `backward` forms again)
        releaseTransposes()
        Kernels.loraAccumulate(dropped(x), aT: a.transposed(), bT: b.transposed(), scale: scale, into: y)
    }

    /// For the forward's input x [tokens, in] and dL/dy [tokens, out]: adds dL/dA and dL/dB
    /// into the gradients and, when given, the adapter's share of dL/dx into `inputGradient`
    /// (<doc:ModelMath>: u = x̃Aᵀ, dB = s·dyᵀu, du = s·dy·B, dA = duᵀx̃, dx += (du·A) ⊙ mask).
    public func backward(input x: Tensor, outputGradient dy: Tensor, inputGradient dx: Tensor?) {
        let input = dropped(x)
        let dy = dy.reshaped([dy.rowCount, dy.rowLength])
        let u = Kernels.loraProduct(input, a.transposed()) // [tokens, rank]
        Kernels.loraProduct(dy, transposeA: true, u, alpha: scale, into: gradientB)
        let du = Kernels.loraProduct(dy, b, alpha: scale) // [tokens, rank]
        Kernels.loraProduct(du, transposeA: true, input, into: gradientA)
        guard let dx else { return }
        let target = dx.reshaped([dx.rowCount, dx.rowLength])
        if let dropoutSeed, dropout > 0 {
            Kernels.add(Kernels.dropout(Kernels.loraProduct(du, a), probability: dropout, seed: dropoutSeed), into: target)
        } else {
            Kernels.loraProduct(du, a, into: target)
        }
    }

    /// dL/dA then dL/dB, appended to one flat vector (a step's gradients, summed across
    /// micro-batches and ranks in `LoRATrainer`).
    func appendGradients(to flat: inout [Float]) {
        gradientA.withUnsafeBufferPointer { flat += $0 }
        gradientB.withUnsafeBufferPointer { flat += $0 }
    }

    /// Sets dL/dA and dL/dB from the front of `flat` (as `appendGradients` laid them out) and
    /// returns the rest.
    func setGradients(from flat: ArraySlice<Float>) -> ArraySlice<Float> {
        let countA = gradientA.count
        let countB = gradientB.count
        gradientA = try! Tensor(shape: a.shape, values: Array(flat.prefix(countA)))
        gradientB = try! Tensor(shape: b.shape, values: Array(flat.dropFirst(countA).prefix(countB)))
        return flat.dropFirst(countA + countB)
    }

    /// Clears the gradients (after an optimizer step).
    public func zeroGradients() {
        gradientA = Tensor(zeros: a.shape)
        gradientB = Tensor(zeros: b.shape)
    }
}
