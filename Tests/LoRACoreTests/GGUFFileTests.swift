import CKernels
import Foundation
import LoRACore
import Testing

struct GGUFFileTests {
    @Test func readsEveryValueTypeAndTheTensorTable() throws {
        let writer = TinyLlamaGGUF.writer()
        let gguf = try GGUFFile(path: try TinyLlamaGGUF.write(writer, name: "values.gguf"))
        #expect(gguf.version == 3 && gguf.metadata.count == writer.metadata.count && gguf.tensors.count == writer.tensors.count)
        #expect(gguf["llama.attention.head_count_kv"] == .uint(2))
        #expect(gguf["llama.vocab_size"] == .int(Int64(256 + 8)))
        #expect(gguf["llama.attention.layer_norm_rms_epsilon"]?.floatValue == 1e-5)
        #expect(gguf["test.values"] == .array([.array([.uint(1), .uint(2)]), .array([.int(-3)])]))
        #expect(gguf["test.i8"] == .int(-8) && gguf["test.u16"] == .uint(16) && gguf["test.i64"] == .int(-64))
        #expect(gguf["tokenizer.ggml.add_bos_token"] == .bool(false))
        for (expected, info) in zip(writer.tensors, gguf.tensors) {
            #expect(info.name == expected.name && info.shape == expected.shape && info.typeID == expected.type.rawValue)
            #expect(info.byteRange!.lowerBound % 32 == 0)
            let values = try gguf.values(of: info.name).scalars
            // F32 and F16 decode to the written values (F16 rounded); Q8_0 within half a step
            let tolerance: Float = expected.type == .f32 ? 0 : expected.type == .f16 ? 1e-3 : 0.2 / 127
            #expect(zip(values, expected.values).allSatisfy { abs($0 - $1) <= tolerance }, "\(info.name)")
        }
    }

    /// Q4_0 and BF16 tensors go through the loader to the exact values they store (f32
    /// mode), and to int8 within Q8_0's rounding.
    @Test func loadsQ4_0AndBF16Tensors() throws {
        let writer = TinyLlamaGGUF.writer(types: [.q4_0, .bf16])
        let path = try TinyLlamaGGUF.write(writer, name: "q4_0-bf16.gguf")
        let exact = try LanguageModel.load(path: path, precision: .f32)
        #expect(exact.summary.storedTypes == ["Q4_0": 8, "BF16": 7, "F32": 5])
        let layer = exact.model.layers[1]
        for (name, linear) in [
            ("blk.1.attn_q.weight", layer.selfAttn.qProj), ("blk.1.ffn_down.weight", layer.mlp.downProj),
            ("blk.1.attn_k.weight", layer.selfAttn.kProj),
        ] {
            let stored = try #require(writer.tensors.first { $0.name == name })
            guard case .f32(let weights) = linear.weight else {
                Issue.record("\(name) is not f32")
                continue
            }
            #expect(weights.scalars == SpecGGUFWriter.decoded(stored.values, as: stored.type), "\(name) \(stored.type)")
        }
        let int8 = try LanguageModel.load(path: path, precision: .int8)
        let ids: [Int32] = [1, 70, 80, 90]
        let a = try #require(int8.model.forward(ids)).scalars
        let b = try #require(exact.model.forward(ids)).scalars
        #expect(zip(a, b).map { abs($0 - $1) }.max()! <= 0.05 * (b.max()! - b.min()!))
    }

    /// Q5_0, Q5_1 and Q5_K blocks as gguf-py writes them decode to gguf-py's own values
    /// (scripts/make-q5-dequant-fixtures.py). Q5_0 exactly; Q5_1 and Q5_K within one
    /// rounding of the tensor's largest value, since gguf-py rounds d·q before adding the
    /// minimum and this library rounds the fused d·q + m once.
    @Test func q5BlocksDecodeAsGGUFPyDecodesThem() throws {
        struct Reference: Decodable {
            let rows: Int, cols: Int
            let values: [String: [Float]]
        }
        let reference = try Fixtures.json("q5-blocks.json", as: Reference.self)
        let gguf = try GGUFFile(path: Fixtures.url("q5-blocks.gguf").path)
        #expect(reference.values.count == 3 && gguf.tensors.count == 3)
        for (name, expected) in reference.values.sorted(by: { $0.key < $1.key }) {
            let info = try #require(gguf.tensor(named: name))
            let type = try #require(TensorDataType(rawValue: name.uppercased()))
            #expect(info.type == type && info.shape == [reference.rows, reference.cols])
            let values = try gguf.values(of: name).scalars
            let largest = expected.map(abs).max()!
            let worst = zip(values, expected).map { abs($0 - $1) }.max()!
            #expect(values.count == expected.count && worst <= (type == .q5_0 ? 0 : Float.ulpOfOne * largest), "\(name): \(worst)")
            print("\(type.rawValue) vs gguf-py: worst |Δ| \(worst), largest |w| \(largest)")
        }
    }

    /// A file mixing Q5 tensors into 4-bit ones (as llama.cpp's Q4_K_M files do where a row
    /// does not split into 256s, and Q5_K_M files throughout) loads at every precision: Q5
    /// tensors are held as Q8_0, the load line counts them, the plan from the tensor table
    /// is what the loader allocated, and int8 and q4 compute what f32 does.
    @Test func q5TensorsAreHeldAsQ8_0() throws {
        let base = SyntheticModelTests.file("q5-base")
        try SyntheticModel.write(config: try SyntheticModelTests.config(), recipe: .q4_0, to: base, seed: 4)
        let source = try GGUFFile(path: base)
        var writer = GGUFWriter()
        writer.copyMetadata(of: source)
        let q5: [String: TensorDataType] = ["attn_v.weight": .q5_K, "attn_output.weight": .q5_1, "ffn_down.weight": .q5_0]
        var state: UInt64 = 7
        for info in source.tensors {
            guard let type = q5.first(where: { info.name.hasSuffix($0.key) })?.value else {
                try writer.copy(info.name, from: source)
                continue
            }
            let count = info.shape[0] * info.shape[1] / type.blockSize
            var blocks = Data(
                (0..<count * type.blockBytes).map { _ in
                    state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                    return UInt8(truncatingIfNeeded: state >> 33)
                })
            // sane scales, every other bit random: d, then Q5_1's minimum or Q5_K's dmin
            let scales: [Float] = type == .q5_0 ? [0.002] : type == .q5_1 ? [0.002, -0.032] : [1e-4, 1e-4]
            for b in 0..<count {
                for (i, scale) in scales.enumerated() {
                    withUnsafeBytes(of: ck_float_to_half(scale).littleEndian) {
                        blocks.replaceSubrange((b * type.blockBytes + 2 * i)..<(b * type.blockBytes + 2 * i + 2), with: $0)
                    }
                }
            }
            writer.add(info.name, shape: info.shape, blocks: type) { blocks }
        }
        let path = SyntheticModelTests.file("q5")
        try writer.write(to: path)
        let ids: [Int32] = [1, 40, 50, 60, 70]
        let exact = try LanguageModel.load(path: path, precision: .f32)
        let reference = try #require(exact.model.forward(ids)).scalars
        let range = reference.max()! - reference.min()!
        for precision in [WeightPrecision.q4, .int8] {
            let model = try LanguageModel.load(path: path, precision: precision)
            let q4 = precision == .q4 ? "Q4_0" : "Q8_0"
            #expect(
                model.summary.conversions.counts
                    == ["Q4_0 → \(q4)": 34, "Q5_0 → Q8_0": 8, "Q5_1 → Q8_0": 8, "Q5_K → Q8_0": 8], "\(precision)")
            let projected = try TrainingMemory(checkpoint: path, settings: TrainingSettings(), precision: precision)
            #expect(projected.baseWeights == model.model.byteCount, "\(precision)")
            let logits = try #require(model.model.forward(ids)).scalars
            let worst = zip(logits, reference).map { abs($0 - $1) }.max()!
            #expect(worst <= 0.05 * range, "\(precision): \(worst) of \(range)")
        }
    }

    /// Version 2 has version 3's layout (both use 64-bit counts); only the number differs.
    @Test func readsVersion2() throws {
        var bytes = TinyLlamaGGUF.writer().data()
        bytes[4] = 2
        let path = try TinyLlamaGGUF.write(name: "v2.gguf")
        try bytes.write(to: URL(fileURLWithPath: path))
        let model = try LanguageModel.load(path: path)
        #expect(model.summary.format == "GGUF v2" && model.model.config.numHiddenLayers == 2)
    }

    @Test func loadsTheTinyModelInBothPrecisions() throws {
        let path = try TinyLlamaGGUF.write(name: "model.gguf")
        let int8 = try LanguageModel.load(path: path, precision: .int8)
        let f32 = try LanguageModel.load(path: path, precision: .f32)
        #expect(int8.model.config == f32.model.config)
        #expect(int8.model.config.numKeyValueHeads == 2 && int8.model.config.tieWordEmbeddings)
        #expect(int8.summary.storedTypes == ["F32": 5 + 5, "F16": 5, "Q8_0": 5]) // 5 norms, 15 matrices
        #expect(int8.chatTemplate == .chatML(defaultSystemPrompt: nil))
        // merges "h e" then nothing joins "t"+"he" or "Ġ"+"he"
        let expected = ["t", "he", "Ġ", "he", "n"].map { int8.tokenizer.id(of: $0)! }
        #expect(int8.tokenizer.encode("the hen", parseSpecial: false, addBOS: nil) == expected)
        let ids: [Int32] = [1, 70, 80, 90, 3, 200]
        let a = int8.model.forward(ids)!.scalars
        let b = f32.model.forward(ids)!.scalars
        let range = b.max()! - b.min()!
        #expect(zip(a, b).allSatisfy { abs($0 - $1) <= 0.05 * range })
    }

    func expectError(_ data: Data, name: String, _ matches: (LoRAError) -> Bool, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("swift-lora-tests-\(getpid())/\(name)").path
        try data.write(to: URL(fileURLWithPath: path))
        do {
            _ = try LanguageModel.load(path: path)
            Issue.record("\(name) loaded", sourceLocation: sourceLocation)
        } catch {
            #expect(matches(error), "\(error)", sourceLocation: sourceLocation)
            #expect(error.description.hasPrefix(path), sourceLocation: sourceLocation)
        }
    }

    @Test func badFilesGiveTypedErrorsNamingTheFile() throws {
        _ = try TinyLlamaGGUF.write(name: "dir-check.gguf")
        var writer = TinyLlamaGGUF.writer()
        let good = writer.data()
        try expectError(good.prefix(good.count - 100), name: "truncated.gguf") {
            if case .truncatedFile(_, let what, _) = $0 { return what.contains("output_norm.weight") }
            return false
        }
        try expectError(good.prefix(40), name: "header-only.gguf") { if case .truncatedFile = $0 { true } else { false } }
        try expectError(Data("GGML".utf8) + good.dropFirst(4), name: "magic.gguf") { if case .malformedFile = $0 { true } else { false } }
        var version = good
        version[4] = 7
        try expectError(version, name: "version.gguf") { $0.description.contains("version 7") }
        try expectError(Data(), name: "empty.gguf") { if case .truncatedFile = $0 { true } else { false } }

        writer = TinyLlamaGGUF.writer()
        writer.tensors.removeAll { $0.name == "blk.1.ffn_up.weight" }
        try expectError(writer.data(), name: "missing.gguf") { $0 == .missingTensor(file: $0.file, tensor: "blk.1.ffn_up.weight") }

        writer = TinyLlamaGGUF.writer()
        let index = writer.tensors.firstIndex { $0.name == "blk.0.attn_k.weight" }!
        writer.tensors[index].shape = [16, 128]
        try expectError(writer.data(), name: "shape.gguf") {
            $0 == .tensorShapeMismatch(file: $0.file, tensor: "blk.0.attn_k.weight", expected: [32, 64], actual: [16, 128])
        }

        writer = TinyLlamaGGUF.writer()
        writer.metadata[0] = ("general.architecture", .string("mamba"))
        try expectError(writer.data(), name: "arch.gguf") { $0 == .unsupportedArchitecture(file: $0.file, architecture: "mamba") }

        // a NaN or an infinity in a weight, in each stored type and precision: refused by name
        func expectNonFinite(_ path: String, _ precision: WeightPrecision) {
            #expect {
                try LanguageModel.load(path: path, precision: precision)
            } throws: { error in
                guard case .nonFiniteValues(path, "blk.1.attn_v.weight", let count) = error as? LoRAError else { return false }
                return count >= 1
            }
        }
        for (type, precision) in [(SpecGGUFWriter.StoredType.f32, WeightPrecision.int8), (.f16, .f32)] {
            writer = TinyLlamaGGUF.writer()
            let at = writer.tensors.firstIndex { $0.name == "blk.1.attn_v.weight" }!
            writer.tensors[at].type = type
            writer.tensors[at].values[5] = type == .f32 ? .nan : .infinity
            expectNonFinite(try TinyLlamaGGUF.write(writer, name: "nonfinite-\(type)-\(precision).gguf"), precision)
        }
        // a Q8_0 or Q4_0 block whose half scale is infinite (0x7C00, its first two bytes)
        for type in [SpecGGUFWriter.StoredType.q8_0, .q4_0] {
            writer = TinyLlamaGGUF.writer()
            let at = writer.tensors.firstIndex { $0.name == "blk.1.attn_v.weight" }!
            writer.tensors[at].type = type
            let path = try TinyLlamaGGUF.write(writer, name: "nonfinite-\(type).gguf")
            let scaleAt = try #require(GGUFFile(path: path).tensor(named: "blk.1.attn_v.weight")?.byteRange?.lowerBound)
            var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            bytes.replaceSubrange(scaleAt..<scaleAt + 2, with: [0x00, 0x7C])
            try bytes.write(to: URL(fileURLWithPath: path))
            expectNonFinite(path, .int8)
            expectNonFinite(path, .f32)
        }

        // an unknown type id (IQ2_XXS = 16) on a tensor the model needs
        var bytes = TinyLlamaGGUF.writer().data()
        let name = Array("blk.0.ffn_gate.weight".utf8)
        let at = bytes.firstRange(of: name)!.upperBound + 4 + 16 // rank, two dims
        bytes[at] = 16
        try expectError(bytes, name: "type.gguf") {
            $0 == .unsupportedTensorType(file: $0.file, tensor: "blk.0.ffn_gate.weight", type: "ggml type 16")
        }
    }

    /// Thousands of mutated files: truncations, flipped bytes, and length or count fields
    /// overwritten with huge values. Every one must load or throw a LoRAError: no crash, no
    /// hang, no huge allocation (the process would die under the 24 GiB machine).
    @Test func mutatedFilesNeverCrashTheReader() throws {
        let good = TinyLlamaGGUF.writer(types: [.q8_0, .f16]).data()
        // mutations concentrate on the header, metadata and tensor table
        let headerEnd = try #require(
            GGUFFile(path: try TinyLlamaGGUF.write(TinyLlamaGGUF.writer(types: [.q8_0, .f16]), name: "fuzz-seed.gguf"))
                .tensors.first?.byteRange?.lowerBound)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("swift-lora-tests-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let path = dir.appendingPathComponent("mutant.gguf").path
        var rng = SeededGenerator(seed: 99)
        var outcomes: [String: Int] = [:]
        for round in 0..<3000 {
            var data = good
            switch round % 3 {
            case 0:
                data = data.prefix(Int.random(in: 0..<data.count, using: &rng))
            case 1:
                for _ in 0..<Int.random(in: 1...8, using: &rng) {
                    data[Int.random(in: 0..<min(headerEnd, data.count), using: &rng)] ^= UInt8.random(in: 1...255, using: &rng)
                }
            default:
                let at = Int.random(in: 0..<min(headerEnd, data.count - 8), using: &rng)
                let huge: UInt64 = [UInt64.max, 1 << 62, 1 << 40, UInt64(Int32.max), 1 << 31 + 7].randomElement(using: &rng)!
                withUnsafeBytes(of: huge.littleEndian) { data.replaceSubrange(at..<at + 8, with: $0) }
            }
            try data.write(to: URL(fileURLWithPath: path))
            do {
                let model = try LanguageModel.load(path: path)
                _ = model.tokenizer.encode("the hen", parseSpecial: true, addBOS: nil)
                outcomes["loaded", default: 0] += 1
            } catch {
                outcomes["\(error)".components(separatedBy: ": ").dropFirst().first ?? "?", default: 0] += 1
            }
        }
        print("GGUF fuzz outcomes: \(outcomes.sorted { $0.value > $1.value }.prefix(12))")
        #expect(outcomes.values.reduce(0, +) == 3000)
        #expect(outcomes["loaded", default: 0] < 3000)
    }
}

extension LoRAError {
    /// The file an error names (empty for errors about no file).
    var file: String {
        switch self {
        case .unreadableFile(let f, _), .truncatedFile(let f, _, _), .malformedFile(let f, _), .invalidMetadata(let f, _, _),
            .unsupportedTensorType(let f, _, _), .missingTensor(let f, _), .nonFiniteValues(let f, _, _),
            .tensorShapeMismatch(let f, _, _, _),
            .unsupportedArchitecture(let f, _), .invalidTokenizer(let f, _), .unwritableFile(let f, _), .invalidExample(let f, _, _),
            .malformedRecord(let f, _, _):
            return f
        case .unsupportedInstructionSet, .valueCountMismatch, .quantizedSizeMismatch, .invalidTrainingSetting, .processGroup,
            .ranksDisagree:
            return ""
        }
    }
}
