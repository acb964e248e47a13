/// Errors of LoRACore. Each case names what it is about, so a message is enough to act on.
public enum LoRAError: Error, Equatable, CustomStringConvertible {
    /// An instruction-set path was requested that this CPU cannot run.
    case unsupportedInstructionSet(String)
    /// Values given for a tensor do not fill its shape.
    case valueCountMismatch(shape: [Int], count: Int)
    /// Raw quantized bytes do not match the size their shape needs.
    case quantizedSizeMismatch(what: String, expected: Int, actual: Int)

    public var description: String {
        switch self {
        case .unsupportedInstructionSet(let name):
            return "instruction set \(name) is not supported by this CPU"
        case .valueCountMismatch(let shape, let count):
            return "\(count) values cannot fill a tensor of shape \(shape)"
        case .quantizedSizeMismatch(let what, let expected, let actual):
            return "\(what): expected \(expected) bytes of Q8_0 blocks, got \(actual)"
        }
    }
}
