import CKernels

extension Kernels {
    /// Where attention finds keys and values: as the projections made them ([≥ keys,
    /// kvHeads·headDim] each), or in layer `layer` of a KV cache.
    public enum AttentionMemory {
        case rows(keys: Tensor, values: Tensor)
        case cache(KVCache, layer: Int)
    }

    /// Grouped-query causal attention of `queries` [tokens, heads·headDim] over the first
    /// `keyCount` keys and values (with a cache, the last `tokens` of those belong to the
    /// queries). Returns [tokens, heads·headDim] and, when asked, the probabilities
    /// [heads, tokens, keyCount] a backward pass needs.
    /// `output`, when given, is written instead of a new tensor (a row range of a larger one).
    public static func attention(
        queries: Tensor, memory: AttentionMemory, keyCount: Int, heads: Int, kvHeads: Int,
        keepProbabilities: Bool = false, output: Tensor? = nil
    ) -> (output: Tensor, probabilities: Tensor?) {
        let tokens = queries.rowCount
        let width = queries.rowLength
        let kvWidth: Int
        let available: Int
        let half: Bool
        switch memory {
        case .rows(let keys, let values):
            precondition(keys.rank == 2 && values.shape == keys.shape, "attention: keys \(keys.shape), values \(values.shape)")
            (kvWidth, available, half) = (keys.shape[1], keys.shape[0], false)
        case .cache(let cache, let layer):
            precondition(layer >= 0 && layer < cache.values.count, "attention: layer \(layer) of a \(cache.values.count)-layer cache")
            (kvWidth, available, half) = (cache.width, cache.capacity, cache.precision == .f16)
        }
        precondition(
            heads > 0 && kvHeads > 0 && heads % kvHeads == 0 && width % heads == 0 && kvWidth == width / heads * kvHeads
                && keyCount >= tokens && keyCount <= available,
            "attention: queries \(queries.shape), \(kvWidth)-wide keys, \(keyCount) of \(available) keys, \(heads)/\(kvHeads) heads")
        let headDim = width / heads
        if let output { precondition(output.shape == queries.shape, "attention: output \(output.shape) for queries \(queries.shape)") }
        var output = output ?? Tensor(uninitialized: queries.shape)
        var probabilities = keepProbabilities ? Tensor(zeros: [heads, tokens, keyCount]) : nil
        let size = ck_attention_workspace_size(Int32(tokens), Int32(keyCount), Int32(heads), Int32(headDim), half ? 1 : 0)
        let status = withWorkspace(bytes: size) { workspace, count in
            queries.withUnsafeBufferPointer { qp in
                output.withUnsafeMutableBufferPointer { op in
                    func run(k: UnsafePointer<Float>?, v: UnsafeRawPointer?, kt: UnsafeRawPointer?, ldkt: Int) -> ck_status {
                        func call(_ pp: UnsafeMutablePointer<Float>?) -> ck_status {
                            ck_attention_fwd(
                                qp.baseAddress, Int32(tokens), Int32(heads), Int32(kvHeads), Int32(headDim), k, v,
                                Int32(keyCount), Int32(kvWidth), kt, Int32(ldkt), half ? 1 : 0,
                                1 / Float(headDim).squareRoot(), op.baseAddress, pp, workspace, count)
                        }
                        return probabilities == nil ? call(nil) : probabilities!.withUnsafeMutableBufferPointer { call($0.baseAddress) }
                    }
                    switch memory {
                    case .rows(let keys, let values):
                        return keys.withUnsafeBufferPointer { kp in
                            values.withUnsafeBufferPointer { vp in
                                run(k: kp.baseAddress, v: UnsafeRawPointer(vp.baseAddress), kt: nil, ldkt: 0)
                            }
                        }
                    case .cache(let cache, let layer):
                        return run(
                            k: nil, v: UnsafeRawPointer(cache.values[layer].pointer),
                            kt: UnsafeRawPointer(cache.transposedKeys[layer].pointer), ldkt: cache.keyStride)
                    }
                }
            }
        }
        check(status, "attention queries \(queries.shape) keyCount \(keyCount)")
        return (output, probabilities)
    }

    /// Attention of several sequences side by side in `queries` [tokens, heads·headDim],
    /// sequence i (`lengths[i]` rows) over layer `layer` of `caches[i]`, whose last
    /// `lengths[i]` positions (already stored) belong to its queries: batched decoding in
    /// one parallel region instead of one per sequence. Writes `output` [tokens, heads·headDim].
    public static func attention(
        queries: Tensor, lengths: [Int], caches: [KVCache], layer: Int, heads: Int, kvHeads: Int,
        output: Tensor
    ) {
        let width = queries.rowLength
        precondition(
            lengths.count == caches.count && lengths.reduce(0, +) == queries.rowCount && output.shape == queries.shape
                && heads > 0 && kvHeads > 0 && heads % kvHeads == 0 && width % heads == 0
                && caches.allSatisfy {
                    $0.width == width / heads * kvHeads && $0.precision == caches[0].precision
                        && layer >= 0 && layer < $0.values.count
                },
            "attention: queries \(queries.shape), \(lengths.count) lengths, \(caches.count) caches, layer \(layer), "
                + "\(heads)/\(kvHeads) heads"
        )
        guard !caches.isEmpty else { return }
        let headDim = width / heads
        let half = caches[0].precision == .f16
        let t = lengths.map(Int32.init)
        let s = zip(lengths, caches).map { Int32($1.count + $0) }
        precondition(zip(s, caches).allSatisfy { Int($0) <= $1.capacity }, "attention: more positions than a cache holds")
        let values = caches.map { UnsafeRawPointer($0.values[layer].pointer) as UnsafeRawPointer? }
        let keys = caches.map { UnsafeRawPointer($0.transposedKeys[layer].pointer) as UnsafeRawPointer? }
        let ldkt = caches.map { Int32($0.keyStride) }
        var output = output
        let size = ck_attention_cached_batch_workspace_size(Int32(caches.count), t, s, Int32(heads), Int32(headDim), half ? 1 : 0)
        let status = withWorkspace(bytes: size) { workspace, count in
            queries.withUnsafeBufferPointer { qp in
                output.withUnsafeMutableBufferPointer { op in
                    ck_attention_fwd_cached_batch(
                        Int32(caches.count), qp.baseAddress, t, Int32(heads), Int32(kvHeads), Int32(headDim),
                        values, s, Int32(caches[0].width), keys, ldkt, half ? 1 : 0,
                        1 / Float(headDim).squareRoot(), op.baseAddress, workspace, count)
                }
            }
        }
        check(status, "attention over \(caches.count) caches, queries \(queries.shape)")
    }

    /// Backward of `attention` over keys and values of the queries' own rows (no cache):
    /// from dL/doutput [tokens, heads·headDim] and the kept probabilities [heads, tokens,
    /// tokens], writes dL/dqueries, dL/dkeys and dL/dvalues into the given tensors (row
    /// ranges of larger ones, for sequences packed together).
    public static func attentionBackward(
        queries: Tensor, keys: Tensor, values: Tensor, probabilities: Tensor,
        outputGradient: Tensor, heads: Int, kvHeads: Int,
        queriesGradient: Tensor, keysGradient: Tensor, valuesGradient: Tensor
    ) {
        let tokens = queries.rowCount
        let width = queries.rowLength
        precondition(
            heads > 0 && kvHeads > 0 && heads % kvHeads == 0 && width % heads == 0
                && keys.shape == [tokens, width / heads * kvHeads] && values.shape == keys.shape
                && probabilities.shape == [heads, tokens, tokens] && outputGradient.shape == queries.shape
                && queriesGradient.shape == queries.shape && keysGradient.shape == keys.shape && valuesGradient.shape == keys.shape,
            "attentionBackward: queries \(queries.shape), keys \(keys.shape), values \(values.shape), "
                + "probabilities \(probabilities.shape), \(heads)/\(kvHeads) heads"
        )
        let headDim = width / heads
        var (dq, dk, dv) = (queriesGradient, keysGradient, valuesGradient)
        let size = ck_attention_bwd_workspace_size(Int32(tokens), Int32(heads), Int32(headDim))
        let status = withWorkspace(bytes: size) { workspace, count in
            queries.withUnsafeBufferPointer { qp in
                keys.withUnsafeBufferPointer { kp in
                    values.withUnsafeBufferPointer { vp in
                        probabilities.withUnsafeBufferPointer { pp in
                            outputGradient.withUnsafeBufferPointer { gp in
                                dq.withUnsafeMutableBufferPointer { dqp in
                                    dk.withUnsafeMutableBufferPointer { dkp in
                                        dv.withUnsafeMutableBufferPointer { dvp in
                                            ck_attention_bwd(
                                                qp.baseAddress, kp.baseAddress, vp.baseAddress, pp.baseAddress, gp.baseAddress,
                                                Int32(tokens), Int32(heads), Int32(kvHeads), Int32(headDim),
                                                1 / Float(headDim).squareRoot(), dqp.baseAddress, dkp.baseAddress,
                                                dvp.baseAddress, workspace, count)
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        check(status, "attentionBackward queries \(queries.shape)")
    }
}

extension Kernels {
    /// Appends keys and values [tokens, width] to one layer of a cache at `position`: values as
    /// rows of `cacheValues` [capacity, width], keys as columns of `transposedKeys`
    /// [width, keyStride], in IEEE half when `half`.
    static func storeInCache(
        keys k: Tensor, values v: Tensor, transposedKeys: AlignedBuffer, keyStride: Int, cacheValues: AlignedBuffer,
        position: Int, half: Bool
    ) {
        let width = k.rowLength
        k.withUnsafeBufferPointer { kp in
            v.withUnsafeBufferPointer { vp in
                ck_kv_store(
                    kp.baseAddress, vp.baseAddress, Int32(k.rowCount), Int32(width), transposedKeys.pointer, Int32(keyStride),
                    cacheValues.pointer, Int32(position), half ? 1 : 0)
            }
        }
    }

    /// Copies the first `positions` of one layer of a cache into another's.
    static func copyCache(
        transposedKeys: AlignedBuffer, keyStride: Int, values: AlignedBuffer, positions: Int, width: Int, half: Bool,
        intoKeys: AlignedBuffer, keyStride outStride: Int, values outValues: AlignedBuffer
    ) {
        ck_kv_copy(
            transposedKeys.pointer, Int32(keyStride), values.pointer, Int32(positions), Int32(width), half ? 1 : 0,
            intoKeys.pointer, Int32(outStride), outValues.pointer)
    }
}
