/// Errors of LoRACore. Each case names what it is about (the file, the tensor, the key),
/// so a message is enough to act on.
public enum LoRAError: Error, Equatable, CustomStringConvertible {
    /// An instruction-set path was requested that this CPU cannot run.
    case unsupportedInstructionSet(String)
    /// Values given for a tensor do not fill its shape.
    case valueCountMismatch(shape: [Int], count: Int)
    /// Raw quantized bytes do not match the size their shape needs.
    case quantizedSizeMismatch(what: String, expected: Int, actual: Int)
    /// The file cannot be opened or mapped.
    case unreadableFile(file: String, reason: String)
    /// The file ends before `what` (at byte `offset`).
    case truncatedFile(file: String, what: String, offset: Int)
    /// The file is not in the expected format, or a field holds an impossible value.
    case malformedFile(file: String, problem: String)
    /// A metadata key or configuration field is missing or has the wrong type or value.
    case invalidMetadata(file: String, key: String, problem: String)
    /// A tensor is stored in a type this library cannot read.
    case unsupportedTensorType(file: String, tensor: String, type: String)
    /// A tensor holds `count` values that are NaN or infinite: the file is corrupt.
    case nonFiniteValues(file: String, tensor: String, count: Int)
    /// A tensor the model needs is not in the checkpoint.
    case missingTensor(file: String, tensor: String)
    /// A tensor's shape contradicts the model configuration.
    case tensorShapeMismatch(file: String, tensor: String, expected: [Int], actual: [Int])
    /// The checkpoint is for a model family this library does not run.
    case unsupportedArchitecture(file: String, architecture: String)
    /// A tokenizer cannot be built from what the file provides.
    case invalidTokenizer(file: String, problem: String)
    /// A file or folder cannot be written.
    case unwritableFile(file: String, reason: String)
    /// A line of a dataset is not a usable example (`line` counts from 1).
    case invalidExample(file: String, line: Int, problem: String)
    /// A line of a record file the library wrote (a training log) is not a record.
    case malformedRecord(file: String, line: Int, problem: String)
    /// Training settings that cannot work, named by the setting (`TrainingSettings`' property
    /// path, e.g. `lora.rank`, `learningRate`).
    case invalidTrainingSetting(setting: String, problem: String)
    /// The processes of a multi-process job cannot work together (MPI missing or failing).
    case processGroup(problem: String)
    /// A rank of a multi-process job has another model, data or settings than rank 0.
    case ranksDisagree(rank: Int, what: String, leader: String, other: String)

    public var description: String {
        switch self {
        case .unsupportedInstructionSet(let name):
            return "instruction set \(name) is not supported by this CPU"
        case .valueCountMismatch(let shape, let count):
            return "\(count) values cannot fill a tensor of shape \(shape)"
        case .quantizedSizeMismatch(let what, let expected, let actual):
            return "\(what): expected \(expected) bytes of Q8_0 blocks, got \(actual)"
        case .unreadableFile(let file, let reason):
            return "\(file): cannot read: \(reason)"
        case .truncatedFile(let file, let what, let offset):
            return "\(file): truncated: the file ends before \(what) (byte \(offset))"
        case .malformedFile(let file, let problem):
            return "\(file): \(problem)"
        case .invalidMetadata(let file, let key, let problem):
            return "\(file): \(key): \(problem)"
        case .unsupportedTensorType(let file, let tensor, let type):
            return "\(file): tensor \(tensor) has type \(type), which this library cannot read"
        case .nonFiniteValues(let file, let tensor, let count):
            return "\(file): tensor \(tensor) holds \(count) values that are NaN or infinite"
        case .missingTensor(let file, let tensor):
            return "\(file): tensor \(tensor) is missing"
        case .tensorShapeMismatch(let file, let tensor, let expected, let actual):
            return "\(file): tensor \(tensor) has shape \(actual), the configuration needs \(expected)"
        case .unsupportedArchitecture(let file, let architecture):
            return "\(file): architecture \"\(architecture)\" is not supported (Llama-family models only)"
        case .invalidTokenizer(let file, let problem):
            return "\(file): tokenizer: \(problem)"
        case .unwritableFile(let file, let reason):
            return "\(file): cannot write: \(reason)"
        case .invalidExample(let file, let line, let problem):
            return "\(file):\(line): \(problem)"
        case .malformedRecord(let file, let line, let problem):
            return "\(file):\(line): \(problem)"
        case .invalidTrainingSetting(let setting, let problem):
            return "\(setting): \(problem)"
        case .processGroup(let problem):
            return "multi-process job: \(problem)"
        case .ranksDisagree(let rank, let what, let leader, let other):
            return "rank \(rank) disagrees with rank 0 on the \(what) (\(other) against \(leader)): every rank must run the same job"
        }
    }
}
