import CFuzzer
import Foundation
import LoRACore

/// One fuzz input as a file: the readers under test take paths, as users give them.
public enum FuzzInput {
    /// This process's scratch folder (one fuzzing process, one folder).
    public static let folder: String = {
        let folder = NSTemporaryDirectory() + "swift-lora-fuzz-\(getpid())"
        try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        return folder
    }()

    /// Runs libFuzzer's driver with this process's arguments over `body`, one call an input.
    public static func run(_ body: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> Never {
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, body))
    }

    /// Writes the input to `folder/name` and returns the path.
    public static func write(_ start: UnsafePointer<UInt8>?, _ count: Int, name: String) -> String {
        let path = "\(folder)/\(name)"
        guard let start, count > 0 else {
            _ = FileManager.default.createFile(atPath: path, contents: Data())
            return path
        }
        _ = FileManager.default.createFile(atPath: path, contents: Data(bytes: start, count: count))
        return path
    }

    /// The tiny Llama 2 test model (its tokenizer and chat format give the dataset readers
    /// something to encode with), loaded once.
    public static let tinyModel: LanguageModel = {
        let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("../../LoRACoreTests/Fixtures/tiny-llama2/hf-f32").standardized.path
        return try! LanguageModel.load(path: fixtures, precision: .f32)
    }()

    /// A tokenizer file of a Hugging Face folder (`tokenizer.json` or `tokenizer.model`), then
    /// a round trip through the tokenizer it builds of a text with special tokens, non-ASCII
    /// letters, digits, white space and an emoji.
    public static func tokenizer(_ start: UnsafePointer<UInt8>?, _ count: Int, fileName: String) -> CInt {
        _ = write(start, count, name: fileName)
        guard let tokenizer = try? makeTokenizer(huggingFaceFolder: folder) else { return 0 }
        _ = tokenizer.decode(tokenizer.encode("Hello <s> wörld 12 \n\t! 😀", parseSpecial: true, addBOS: nil))
        return 0
    }
}
