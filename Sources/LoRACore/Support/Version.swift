/// The library's identity in results files and reports.
public enum SwiftLoRA {
    public static let version = "0.3.0"
}
