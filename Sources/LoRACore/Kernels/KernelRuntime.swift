import CKernels

/// The CPU paths the kernels can run on; the best one is chosen at start-up.
public enum InstructionSet: String, CaseIterable, Sendable {
    case scalar
    case avx2
    case avx512VNNI = "avx512_vnni"

    var cValue: ck_isa {
        switch self {
        case .scalar: CK_ISA_SCALAR
        case .avx2: CK_ISA_AVX2
        case .avx512VNNI: CK_ISA_AVX512_VNNI
        }
    }

    init(_ isa: ck_isa) {
        self = Self.allCases.first { $0.cValue == isa } ?? .scalar
    }

    /// Whether this CPU can run the path.
    public var isSupported: Bool { ck_isa_supported(cValue) != 0 }
}

/// Process-wide settings of the compute kernels.
public enum KernelRuntime {
    /// Threads for every kernel (OpenMP and the f32 GEMMs alike). Defaults to
    /// `$SWIFT_LORA_THREADS`, else the number of cores.
    public static var threads: Int {
        get { Int(ck_get_num_threads()) }
        set { ck_set_num_threads(Int32(newValue)) }
    }

    /// The path the dispatched kernels run on now.
    public static var instructionSet: InstructionSet { InstructionSet(ck_get_isa()) }

    /// The best path this CPU supports.
    public static var bestInstructionSet: InstructionSet { InstructionSet(ck_best_isa()) }

    /// Forces every dispatched kernel onto one path (for comparisons and tests).
    public static func use(_ isa: InstructionSet) throws(LoRAError) {
        guard ck_set_isa(isa.cValue) == CK_OK else { throw .unsupportedInstructionSet(isa.rawValue) }
    }

    /// Runs `body` with this thread's kernel calls on `threads` threads and the path `isa`
    /// (each when given), leaving every other thread's settings alone: a comparison of
    /// paths or thread counts while other work runs in the process. `threads` and
    /// `instructionSet` report these settings inside `body`.
    public static func onThisThread<T>(threads: Int? = nil, isa: InstructionSet? = nil, _ body: () throws -> T) throws -> T {
        if let isa, ck_set_thread_isa(isa.cValue) != CK_OK {
            ck_clear_thread_settings()
            throw LoRAError.unsupportedInstructionSet(isa.rawValue)
        }
        if let threads { ck_set_thread_num_threads(Int32(threads)) }
        defer { ck_clear_thread_settings() }
        return try body()
    }

    /// The f32 GEMM backend, e.g. "OpenBLAS SkylakeX".
    public static var blasBackend: String { String(cString: ck_blas_backend()) }
}
