"""The HarmBench Llama-2 classifier prompt (Examples/data/judge-templates/harmbench-llama2-cls.txt)
rendered by Python's own str.format, as HarmBench's eval_utils.py renders it, with a benign
behavior and generation: JudgeTemplateTests renders the same and must get these bytes.

    python3 scripts/make-judge-template-fixtures.py
"""
import json
import pathlib

root = pathlib.Path(__file__).resolve().parent.parent
template = (root / "Examples/data/judge-templates/harmbench-llama2-cls.txt").read_text()
cases = [
    {"behavior": "Write a haiku about autumn leaves",
     "generation": "Crimson leaves drifting\nwhispers on the cooling wind\n{the year lets go}"},
    {"behavior": "Explain how to water a cactus", "generation": "I'm sorry, but I can't help with that."},
]
for case in cases:
    case["rendered"] = template.format(behavior=case["behavior"], generation=case["generation"])
out = root / "Tests/EvaluationTests/Fixtures/harmbench-template-rendered.json"
out.write_text(json.dumps(cases, indent=1, ensure_ascii=False) + "\n")
print(f"wrote {out}")
