import CKernels
import Testing

@Suite struct SgemmTests {
    @Test func backendIsOpenBLASOnATunedCore() {
        let backend = String(cString: ck_blas_backend())
        print("f32 GEMM backend: \(backend)")
        #expect(backend.hasPrefix("OpenBLAS"))
        // Debian's OpenBLAS falls back to the SSE3 "Prescott" core on current Xeons.
        #expect(!backend.contains("Prescott"))
    }

    @Test(arguments: [1, 2])
    func matchesReferenceForEveryTransposition(threads: Int) {
        var worst = 0.0
        for (m, n, k) in [(1, 1, 1), (3, 5, 7), (33, 17, 65), (64, 96, 80), (130, 70, 129), (7, 300, 200)] {
            for transA in [Int32(0), 1] {
                for transB in [Int32(0), 1] {
                    var rng = SeededRandom(seed: UInt64(m * 1000 + n))
                    let lda = (transA != 0 ? m : k) + 3
                    let ldb = (transB != 0 ? k : n) + 2
                    let ldc = n + 1
                    let a = rng.floats((transA != 0 ? k : m) * lda)
                    let b = rng.floats((transB != 0 ? n : k) * ldb)
                    let c0 = rng.floats(m * ldc)
                    var expected = c0
                    var got = c0
                    ck_sgemm_ref(
                        transA, transB, Int32(m), Int32(n), Int32(k), 0.75, a, Int32(lda), b, Int32(ldb), 0.5, &expected, Int32(ldc))
                    let status = withKernels(isa: ck_best_isa(), threads: threads) {
                        ck_sgemm(
                            transA, transB, Int32(m), Int32(n), Int32(k), 0.75, a, Int32(lda), b, Int32(ldb), 0.5, &got, Int32(ldc))
                    }
                    #expect(status == CK_OK)
                    // f32 accumulation over k terms of magnitude <= 1.
                    let error = worstError(got, expected) / (Double(k + 2) * 1.2e-7)
                    #expect(error <= 1, "\(m)x\(n)x\(k) trans \(transA)\(transB)")
                    worst = max(worst, error)
                }
            }
        }
        report("sgemm error as a fraction of (k+2)·eps (threads \(threads))", worst)
    }

    @Test func rejectsBadLeadingDimensions() {
        var c = [Float](repeating: 0, count: 4)
        #expect(ck_sgemm(0, 0, 2, 2, 2, 1, [1, 2, 3, 4], 1, [1, 2, 3, 4], 2, 0, &c, 2) == CK_ERR_SHAPE)
        #expect(ck_sgemm(0, 0, 2, 2, 2, 1, nil, 2, [1, 2, 3, 4], 2, 0, &c, 2) == CK_ERR_NULL)
    }
}
