import Foundation
import LoRACore
import Testing

/// Our renderings against Jinja2 running each model's own template (scripts/make-smollm2-fixtures.py).
struct ChatTemplateTests {
    struct Render: Decodable {
        let family: String
        let template: String
        let bos: String
        let eos: String
        let messages: [ChatMessage]
        let add_generation_prompt: Bool
        let text: String
    }
    struct Fixture: Decodable { let renders: [Render] }

    @Test func renderingsAreByteIdenticalToJinja() throws {
        let renders = try Fixtures.json("chat-templates.json", as: Fixture.self).renders
        #expect(Set(renders.map(\.family)) == ["chatml", "llama2", "llama3"])
        for render in renders {
            let template = try #require(ChatTemplate(jinja: render.template), "\(render.family) not recognized")
            switch (render.family, template) {
            case ("chatml", .chatML), ("llama2", .llama2), ("llama3", .llama3): break
            default: Issue.record("\(render.family) recognized as \(template)")
            }
            let text = template.render(render.messages, addGenerationPrompt: render.add_generation_prompt, bos: render.bos, eos: render.eos)
            #expect(text == render.text, "\(render.family) \(render.messages.map(\.role.rawValue))")
        }
    }

    @Test func unknownTemplatesAreNotGuessed() {
        #expect(ChatTemplate(jinja: "{{ messages[0]['content'] }}") == nil)
        #expect(ChatTemplate(jinja: "{% for m in messages %}<start_of_turn>{{ m['content'] }}{% endfor %}") == nil)
    }
}
