import CKernels

/// Which dimensions RoPE pairs up: GGUF files for arch `llama` store Q/K rows permuted
/// for adjacent pairs; Hugging Face checkpoints rotate halves.
public enum RoPELayout: Sendable {
    case adjacentPairs // (2i, 2i+1): GGUF / llama.cpp
    case halves // (i, i + n/2): Hugging Face rotate_half

    var cValue: ck_rope_mode { self == .adjacentPairs ? CK_ROPE_NORM : CK_ROPE_NEOX }
}

extension Kernels {
    static func sameShape(_ a: Tensor, _ b: Tensor, _ operation: String) {
        precondition(a.shape == b.shape, "\(operation): shapes differ: \(a.shape) and \(b.shape)")
    }

    /// RMSNorm over the last dimension: returns y and the per-row 1/rms kept for backward.
    public static func rmsNorm(_ x: Tensor, weight: Tensor, eps: Float) -> (output: Tensor, rstd: Tensor) {
        precondition(weight.count == x.rowLength, "rmsNorm: weight \(weight.shape) does not match rows of x \(x.shape)")
        var y = Tensor(uninitialized: x.shape)
        var rstd = Tensor(uninitialized: [x.rowCount])
        x.withUnsafeBufferPointer { xp in
            weight.withUnsafeBufferPointer { gp in
                y.withUnsafeMutableBufferPointer { yp in
                    rstd.withUnsafeMutableBufferPointer { rp in
                        ck_rmsnorm_fwd(
                            xp.baseAddress, gp.baseAddress, Int32(x.rowCount), Int32(x.rowLength), eps,
                            yp.baseAddress, rp.baseAddress)
                    }
                }
            }
        }
        return (y, rstd)
    }

    /// dx of rmsNorm; when `weightGradient` is given, dL/dweight is added into it.
    public static func rmsNormBackward(
        _ dy: Tensor, x: Tensor, weight: Tensor, rstd: Tensor,
        weightGradient: Tensor? = nil
    ) -> Tensor {
        sameShape(dy, x, "rmsNormBackward")
        precondition(
            weight.count == x.rowLength && rstd.count == x.rowCount,
            "rmsNormBackward: weight \(weight.shape) / rstd \(rstd.shape) do not match x \(x.shape)")
        var dx = Tensor(uninitialized: x.shape)
        var dg = weightGradient
        if let dg { precondition(dg.count == x.rowLength, "rmsNormBackward: weightGradient \(dg.shape) for x \(x.shape)") }
        dy.withUnsafeBufferPointer { dyp in
            x.withUnsafeBufferPointer { xp in
                weight.withUnsafeBufferPointer { gp in
                    rstd.withUnsafeBufferPointer { rp in
                        dx.withUnsafeMutableBufferPointer { dxp in
                            func run(_ dgp: UnsafeMutablePointer<Float>?) {
                                ck_rmsnorm_bwd(
                                    dyp.baseAddress, xp.baseAddress, gp.baseAddress, rp.baseAddress,
                                    Int32(x.rowCount), Int32(x.rowLength), dxp.baseAddress, dgp)
                            }
                            if dg != nil { dg!.withUnsafeMutableBufferPointer { run($0.baseAddress) } } else { run(nil) }
                        }
                    }
                }
            }
        }
        return dx
    }

    /// Rotates `x` [tokens, heads, headDim] in place (its storage is shared with the caller):
    /// pair p of the first 2·frequencies.count dims turns by position · frequencies[p].
    /// `inverse` applies the opposite rotation: the backward of the forward one.
    public static func rope(
        _ x: Tensor, positions: [Int32], frequencies: [Float], layout: RoPELayout,
        inverse: Bool = false
    ) {
        let rotaryDims = 2 * frequencies.count
        precondition(
            x.rank == 3 && positions.count == x.shape[0] && rotaryDims <= x.shape[2],
            "rope: x \(x.shape) needs [tokens, heads, headDim] with \(positions.count) positions and \(rotaryDims) rotary dims <= headDim")
        var view = x
        view.withUnsafeMutableBufferPointer { xp in
            let rotate = inverse ? ck_rope_bwd : ck_rope_fwd
            rotate(
                xp.baseAddress, Int32(x.shape[0]), Int32(x.shape[1]), Int32(x.shape[2]), Int32(rotaryDims), positions,
                frequencies, layout.cValue)
        }
    }

    /// The standard RoPE frequencies theta^(-2p/rotaryDims), computed in f32 as transformers does.
    public static func ropeFrequencies(theta: Float, rotaryDims: Int) -> [Float] {
        var frequencies = [Float](repeating: 0, count: rotaryDims / 2)
        ck_rope_inv_freq(theta, Int32(rotaryDims), &frequencies)
        return frequencies
    }

    /// Causal softmax of scores [queries, keys] in place: query i sees keys <= i + offset.
    public static func causalSoftmax(_ scores: Tensor, offset: Int, scale: Float) {
        precondition(scores.rank == 2, "causalSoftmax: expected [queries, keys], got \(scores.shape)")
        var view = scores
        view.withUnsafeMutableBufferPointer {
            ck_softmax_causal_fwd($0.baseAddress, Int32(scores.shape[0]), Int32(scores.shape[1]), Int32(offset), scale)
        }
    }

    /// Gradient with respect to the scaled scores, given the probabilities and dL/dP.
    public static func softmaxBackward(probabilities p: Tensor, gradient dp: Tensor) -> Tensor {
        sameShape(p, dp, "softmaxBackward")
        var ds = Tensor(zeros: p.shape)
        p.withUnsafeBufferPointer { pp in
            dp.withUnsafeBufferPointer { dpp in
                ds.withUnsafeMutableBufferPointer {
                    ck_softmax_bwd(pp.baseAddress, dpp.baseAddress, Int32(p.rowCount), Int32(p.rowLength), $0.baseAddress)
                }
            }
        }
        return ds
    }

    /// silu(gate) ⊙ up.
    public static func swiglu(gate: Tensor, up: Tensor) -> Tensor {
        sameShape(gate, up, "swiglu")
        var m = Tensor(uninitialized: gate.shape)
        gate.withUnsafeBufferPointer { ap in
            up.withUnsafeBufferPointer { bp in
                m.withUnsafeMutableBufferPointer { ck_swiglu_fwd(ap.baseAddress, bp.baseAddress, Int64(gate.count), $0.baseAddress) }
            }
        }
        return m
    }

    public static func swigluBackward(_ dm: Tensor, gate: Tensor, up: Tensor) -> (gate: Tensor, up: Tensor) {
        sameShape(gate, up, "swigluBackward")
        sameShape(dm, gate, "swigluBackward")
        var da = Tensor(uninitialized: gate.shape)
        var db = Tensor(uninitialized: gate.shape)
        gate.withUnsafeBufferPointer { ap in
            up.withUnsafeBufferPointer { bp in
                dm.withUnsafeBufferPointer { dmp in
                    da.withUnsafeMutableBufferPointer { dap in
                        db.withUnsafeMutableBufferPointer {
                            ck_swiglu_bwd(
                                ap.baseAddress, bp.baseAddress, dmp.baseAddress, Int64(gate.count), dap.baseAddress,
                                $0.baseAddress)
                        }
                    }
                }
            }
        }
        return (da, db)
    }

    /// Mean cross-entropy of logits [tokens, vocab] against targets (negative = ignored),
    /// with what the backward needs. `counted` is 0 when every target is ignored.
    public static func crossEntropy(logits: Tensor, targets: [Int32]) -> (loss: Float, counted: Int, logSumExp: Tensor) {
        precondition(
            logits.rank == 2 && targets.count == logits.shape[0],
            "crossEntropy: logits \(logits.shape) need one target per row, got \(targets.count)")
        precondition(
            targets.allSatisfy { $0 < Int32(logits.shape[1]) },
            "crossEntropy: a target is outside the vocabulary of \(logits.shape[1])")
        let (losses, lse, counted) = crossEntropyRows(logits: logits, targets: targets)
        let total = losses.withUnsafeBufferPointer { $0.reduce(0, +) }
        return (counted > 0 ? total / Float(counted) : 0, counted, lse)
    }

    /// Per row of logits [tokens, vocab]: logsumexp(z) − z[target] (0 where the target is
    /// negative, ignored), and the logsumexp the backward needs.
    public static func crossEntropyLosses(logits: Tensor, targets: [Int32]) -> (losses: [Float], logSumExp: Tensor) {
        precondition(
            logits.rank == 2 && targets.count == logits.shape[0] && targets.allSatisfy { $0 < Int32(logits.shape[1]) },
            "crossEntropyLosses: logits \(logits.shape) need one in-vocabulary target per row, got \(targets.count)")
        let (losses, lse, _) = crossEntropyRows(logits: logits, targets: targets)
        return (losses.scalars, lse)
    }

    /// log p(target) of each row of logits [tokens, vocab]: log-softmax picked at the target.
    public static func logProbabilities(logits: Tensor, targets: [Int32]) -> [Float] {
        precondition(
            logits.rank == 2 && targets.count == logits.shape[0] && targets.allSatisfy { $0 >= 0 && $0 < Int32(logits.shape[1]) },
            "logProbabilities: logits \(logits.shape) need one in-vocabulary target per row, got \(targets.count)")
        return crossEntropyRows(logits: logits, targets: targets).losses.scalars.map { -$0 }
    }

    /// log Σ exp(z) of each row of logits [rows, vocab]: with it, log p(token) = z[token] −
    /// logsumexp is the same bits `logProbabilities` gives.
    public static func logSumExp(_ logits: Tensor) -> [Float] {
        precondition(logits.rank == 2 && logits.shape[1] > 0, "logSumExp: logits \(logits.shape)")
        return crossEntropyRows(logits: logits, targets: Array(repeating: 0, count: logits.shape[0])).logSumExp.scalars
    }

    /// Per row: logsumexp(z) − z[target] (0 for an ignored target), logsumexp, and how many
    /// rows were counted.
    private static func crossEntropyRows(logits: Tensor, targets: [Int32]) -> (losses: Tensor, logSumExp: Tensor, counted: Int) {
        var losses = Tensor(zeros: [logits.shape[0]])
        var lse = Tensor(zeros: [logits.shape[0]])
        let counted = logits.withUnsafeBufferPointer { zp in
            losses.withUnsafeMutableBufferPointer { lp in
                lse.withUnsafeMutableBufferPointer {
                    ck_cross_entropy_fwd(
                        zp.baseAddress, targets, Int32(logits.shape[0]), Int32(logits.shape[1]), lp.baseAddress,
                        $0.baseAddress)
                }
            }
        }
        return (losses, lse, Int(counted))
    }

    /// dL/dlogits = (softmax − onehot) · scale on counted rows (scale 1/counted for the mean),
    /// zero on ignored ones, written over `logits` and returned: a slice of the head's logits
    /// is a step's largest buffer (96 MiB for SmolLM2's vocabulary), which a new one would take
    /// as fresh pages from the system every slice, and nothing reads them after.
    public static func crossEntropyBackward(overwriting logits: Tensor, targets: [Int32], logSumExp: Tensor, scale: Float)
        -> Tensor
    {
        precondition(
            logits.rank == 2 && targets.count == logits.shape[0] && logSumExp.count == logits.shape[0],
            "crossEntropyBackward: logits \(logits.shape), \(targets.count) targets, lse \(logSumExp.shape)")
        var dz = logits
        logSumExp.withUnsafeBufferPointer { lp in
            dz.withUnsafeMutableBufferPointer {
                ck_cross_entropy_bwd(
                    $0.baseAddress, targets, lp.baseAddress, Int32(logits.shape[0]), Int32(logits.shape[1]), scale, $0.baseAddress)
            }
        }
        return dz
    }

    /// x += y, elementwise (residual connections).
    public static func add(_ y: Tensor, into x: Tensor) {
        sameShape(x, y, "add")
        var target = x
        y.withUnsafeBufferPointer { yp in
            target.withUnsafeMutableBufferPointer { ck_add(yp.baseAddress, Int64(x.count), $0.baseAddress) }
        }
    }

    /// x += y, elementwise, for flat vectors (gradients summed across micro-batches).
    static func add(_ y: ArraySlice<Float>, into x: inout [Float]) {
        precondition(x.count == y.count, "add: \(y.count) values into \(x.count)")
        y.withUnsafeBufferPointer { yp in
            x.withUnsafeMutableBufferPointer { ck_add(yp.baseAddress, Int64(yp.count), $0.baseAddress) }
        }
    }

    /// Inverted dropout of x: each element kept with probability 1 − p and scaled by 1/(1 − p),
    /// the mask a pure function of (seed, element index).
    public static func dropout(_ x: Tensor, probability p: Float, seed: UInt64) -> Tensor {
        var y = Tensor(zeros: x.shape)
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { ck_dropout(xp.baseAddress, Int64(x.count), p, seed, $0.baseAddress) }
        }
        return y
    }

    /// One AdamW step on `parameter` in place, with its moments `m` and `v` (PyTorch's order
    /// of operations; `step` counts from 1).
    public static func adamW(
        parameter: Tensor, gradient: Tensor, m: Tensor, v: Tensor, step: Int, learningRate: Float,
        beta1: Float, beta2: Float, epsilon: Float, weightDecay: Float
    ) {
        sameShape(parameter, gradient, "adamW")
        sameShape(parameter, m, "adamW")
        sameShape(parameter, v, "adamW")
        var (p, m, v) = (parameter, m, v)
        gradient.withUnsafeBufferPointer { gp in
            p.withUnsafeMutableBufferPointer { pp in
                m.withUnsafeMutableBufferPointer { mp in
                    v.withUnsafeMutableBufferPointer {
                        ck_adamw_step(
                            pp.baseAddress, gp.baseAddress, mp.baseAddress, $0.baseAddress, Int64(parameter.count), learningRate,
                            beta1, beta2, epsilon, weightDecay, Int32(step))
                    }
                }
            }
        }
    }

    /// Σ x², summed in double in index order: the same value for any thread count.
    public static func sumOfSquares(_ x: Tensor) -> Double {
        x.withUnsafeBufferPointer { $0.reduce(0) { $0 + Double($1) * Double($1) } }
    }

    /// x *= factor, in place.
    public static func scale(_ x: Tensor, by factor: Float) {
        var target = x
        target.withUnsafeMutableBufferPointer { for i in $0.indices { $0[i] *= factor } }
    }
}
