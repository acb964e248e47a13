/// A chat message.
public struct ChatMessage: Sendable, Equatable, Codable {
    public enum Role: String, Sendable, Codable { case system, user, assistant }
    public var role: Role
    public var content: String

    public init(role: Role, content: String) {
        self.role = role
        self.content = content
    }

    public static func system(_ content: String) -> ChatMessage { .init(role: .system, content: content) }
    public static func user(_ content: String) -> ChatMessage { .init(role: .user, content: content) }
    public static func assistant(_ content: String) -> ChatMessage { .init(role: .assistant, content: content) }
}

/// The prompt format of a chat model, recognized from its Jinja `chat_template` the way
/// llama.cpp does (<doc:FileFormats>) and rendered natively: each format's output is
/// checked byte for byte against Jinja2 running the model's own template.
public enum ChatTemplate: Sendable, Equatable {
    /// `<|im_start|>role\ncontent<|im_end|>\n`; SmolLM2 adds a default system turn when the
    /// conversation has none.
    case chatML(defaultSystemPrompt: String?)
    /// Meta's Llama 2 chat: `<s>[INST] <<SYS>>\n…\n<</SYS>>\n\n… [/INST] … </s>`, contents stripped.
    case llama2
    /// `<|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>`, contents trimmed.
    case llama3

    /// The format a template string describes, or nil for one this library does not know.
    public init?(jinja template: String) {
        if template.contains("<|im_start|>") && !template.contains("<|im_sep|>") {
            self = .chatML(defaultSystemPrompt: Self.defaultSystemPrompt(in: template))
        } else if template.contains("<|start_header_id|>") && template.contains("<|end_header_id|>") {
            self = .llama3
        } else if template.contains("[INST]") && template.contains("<<SYS>>") {
            self = .llama2
        } else {
            return nil
        }
    }

    /// The system turn a ChatML template writes when the first message is not a system one
    /// (SmolLM2: "You are a helpful AI assistant named SmolLM, trained by Hugging Face").
    static func defaultSystemPrompt(in template: String) -> String? {
        guard template.contains("!= 'system'") || template.contains("!= \"system\"") else { return nil }
        for marker in ["<|im_start|>system\\n", "<|im_start|>system\n"] {
            guard let start = template.range(of: marker),
                let end = template.range(of: "<|im_end|>", range: start.upperBound..<template.endIndex)
            else { continue }
            return String(template[start.upperBound..<end.lowerBound]).replacingOccurrences(of: "\\n", with: "\n")
        }
        return nil
    }

    /// The conversation as prompt text; with `addGenerationPrompt`, ending where the
    /// assistant's answer starts. Special tokens appear as their text (`bos`, `eos`): encode
    /// the result with `parseSpecial`.
    public func render(_ messages: [ChatMessage], addGenerationPrompt: Bool, bos: String = "<s>", eos: String = "</s>") -> String {
        var out = ""
        switch self {
        case .chatML(let defaultSystem):
            if let defaultSystem, messages.first?.role != .system {
                out += "<|im_start|>system\n\(defaultSystem)<|im_end|>\n"
            }
            for m in messages { out += "<|im_start|>\(m.role.rawValue)\n\(m.content)<|im_end|>\n" }
            if addGenerationPrompt { out += "<|im_start|>assistant\n" }
        case .llama2:
            var turns = messages[...]
            var system: String?
            if let first = turns.first, first.role == .system {
                system = first.content
                turns = turns.dropFirst()
            }
            for (i, m) in turns.enumerated() {
                var content = m.content
                if i == 0, let system { content = "<<SYS>>\n\(system)\n<</SYS>>\n\n" + content }
                switch m.role {
                case .user: out += "\(bos)[INST] \(Self.pythonStrip(content)) [/INST]"
                case .assistant: out += " \(Self.pythonStrip(content)) \(eos)"
                case .system: break
                }
            }
        case .llama3:
            for (i, m) in messages.enumerated() {
                if i == 0 { out += bos }
                out += "<|start_header_id|>\(m.role.rawValue)<|end_header_id|>\n\n\(Self.pythonStrip(m.content))<|eot_id|>"
            }
            if addGenerationPrompt { out += "<|start_header_id|>assistant<|end_header_id|>\n\n" }
        }
        return out
    }

    /// Python's `str.strip()` (Jinja's `trim`): Unicode whitespace off both ends.
    static func pythonStrip(_ s: String) -> String {
        let scalars = s.unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
            let last = scalars.lastIndex(where: { !$0.properties.isWhitespace })
        else { return "" }
        return String(scalars[first...last])
    }
}
