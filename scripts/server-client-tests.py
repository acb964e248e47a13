"""Tests of a running `lora serve` through OpenAI's own Python client (and raw HTTP for what
the client cannot send). Started by scripts/test-server, which starts the server:

    server-client-tests.py URL API_KEY LORA MODEL ADAPTER_NAME ADAPTER_DIR

Each expected value comes from the library's other entry points (`lora logprobs`,
`lora generate`, the same request sent alone), never from this file.
"""
import concurrent.futures
import http.client
import json
import random
import socket
import subprocess
import sys
import time
import urllib.parse

import openai

url, api_key, lora, model_path, adapter_name, adapter_dir = sys.argv[1:7]
client = openai.OpenAI(base_url=url + "/v1", api_key=api_key, max_retries=0, timeout=120)
parsed = urllib.parse.urlparse(url)
failures = []


def check(condition, what):
    print(("ok   " if condition else "FAIL ") + what, flush=True)
    if not condition:
        failures.append(what)


def raw(method, path, body=None, headers=None, key=api_key):
    """One request on its own connection: (status, parsed JSON or None, raw bytes)."""
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=120)
    all_headers = {"Content-Type": "application/json"}
    if key:
        all_headers["Authorization"] = f"Bearer {key}"
    all_headers.update(headers or {})
    connection.request(method, path, body=body, headers=all_headers)
    response = connection.getresponse()
    data = response.read()
    connection.close()
    try:
        return response.status, json.loads(data), data
    except ValueError:
        return response.status, None, data


def cli(*args):
    out = subprocess.run([lora, *args, "--model", model_path], check=True, capture_output=True, text=True).stdout
    return out


def generated_text(*args):
    """What `lora generate` streamed: its output less the newline it ends with."""
    out = cli("generate", *args)
    return out[:-1] if out.endswith("\n") else out


models = [m.id for m in client.models.list().data]
base = models[0]
check(models == [base, adapter_name], f"/v1/models lists the base and the adapter: {models}")
status, health, _ = raw("GET", "/health", key=None)
check(status == 200 and health["status"] == "ok", "/health answers 200 without the key")

# --- completions with echo and logprobs: the prompt's log-probabilities are `lora logprobs`'
text = "The quick brown fox jumps over the lazy dog because it"
expected = json.loads(cli("logprobs", "--text", text).strip().splitlines()[-1])
scored = client.completions.create(model=base, prompt=text, max_tokens=0, echo=True, logprobs=1, temperature=0)
lp = scored.choices[0].logprobs
check(lp.token_logprobs[0] is None and lp.top_logprobs[0] is None, "echo: the first token has null logprobs")
worst = max(abs(a - b) for a, b in zip(lp.token_logprobs[1:], expected["logprobs"]))
check(len(lp.token_logprobs) == len(expected["ids"]) and worst < 2e-3,
      f"echo with max_tokens 0: {len(lp.token_logprobs)} prompt tokens, worst difference from `lora logprobs` {worst:.2e}")
check(scored.choices[0].text == text, "echo returns the prompt as the text")
# lm-evaluation-harness's request: token ids, max_tokens 1, echo, logprobs 1
ids = expected["ids"]
harness = client.completions.create(model=base, prompt=[ids, ids[:5]], max_tokens=1, echo=True, logprobs=1, temperature=0)
first, second = sorted(harness.choices, key=lambda c: c.index)
check(len(first.logprobs.token_logprobs) == len(ids) + 1 and len(second.logprobs.token_logprobs) == 6,
      "token-id prompts (a list of lists): every prompt token plus the generated one, no BOS added")
worst = max(abs(a - b) for a, b in zip(first.logprobs.token_logprobs[1:len(ids)], expected["logprobs"]))
check(worst < 2e-3, f"token-id prompt: log-probabilities as `lora logprobs` (worst {worst:.2e})")
generated = first.logprobs.token_logprobs[-1]
check(generated == max(first.logprobs.top_logprobs[-1].values()),
      "temperature 0: the generated token is the top alternative, with exactly its log-probability")
five = client.completions.create(model=base, prompt=text, max_tokens=3, logprobs=5, temperature=0)
check(all(len(t) == 5 for t in five.choices[0].logprobs.top_logprobs), "logprobs 5: five alternatives per token")

# --- generation equals `lora generate` (the one-sequence path), base and adapter, completions and chat
prompt = "Write one sentence about the sea."
for name, extra in ((base, []), (adapter_name, ["--adapter", adapter_dir])):
    alone = generated_text("--prompt", prompt, "--max-tokens", "24", *extra)
    chat = client.chat.completions.create(model=name, messages=[{"role": "user", "content": prompt}], max_tokens=24, temperature=0)
    check(chat.choices[0].message.content == alone, f"chat ({name}): the same text as `lora generate`")
    chunks = client.chat.completions.create(model=name, messages=[{"role": "user", "content": prompt}], max_tokens=24,
                                            temperature=0, stream=True, stream_options={"include_usage": True})
    pieces, finish, usage = [], None, None
    for chunk in chunks:
        if chunk.usage:
            usage = chunk.usage
        for c in chunk.choices:
            pieces.append(c.delta.content or "")
            finish = c.finish_reason or finish
    check("".join(pieces) == alone and finish == chat.choices[0].finish_reason and usage.total_tokens == chat.usage.total_tokens,
          f"streamed chat ({name}): the same text, finish reason and usage")
    raw_alone = generated_text("--raw", "--prompt", "Once upon a time", "--max-tokens", "16", *extra)
    completion = client.completions.create(model=name, prompt="Once upon a time", max_tokens=16, temperature=0)
    check(completion.choices[0].text == raw_alone, f"completion ({name}): the same text as `lora generate --raw`")
base_answer = client.chat.completions.create(model=base, messages=[{"role": "user", "content": prompt}], max_tokens=24, temperature=0)
adapted = client.chat.completions.create(model=adapter_name, messages=[{"role": "user", "content": prompt}], max_tokens=24, temperature=0)
check(base_answer.choices[0].message.content != adapted.choices[0].message.content, "the adapter changes the answer")
with_lp = client.chat.completions.create(model=base, messages=[{"role": "user", "content": prompt}], max_tokens=6,
                                         temperature=0, logprobs=True, top_logprobs=3)
content = with_lp.choices[0].logprobs.content
check(len(content) == with_lp.usage.completion_tokens - (with_lp.choices[0].finish_reason == "stop")
      and all(len(c.top_logprobs) == 3 and c.logprob == c.top_logprobs[0].logprob for c in content),
      "chat logprobs: one entry per answer token, 3 alternatives, greedy token on top")
stopped = client.completions.create(model=base, prompt="1, 2, 3, 4,", max_tokens=30, temperature=0, stop=[" 7"])
check(stopped.choices[0].finish_reason == "stop" and " 7" not in stopped.choices[0].text and " 6" in stopped.choices[0].text,
      f"stop strings end the text before them: {stopped.choices[0].text!r}")
seeded = [client.completions.create(model=base, prompt="Once upon a time", max_tokens=16, temperature=0.9, seed=11).choices[0].text
          for _ in range(2)]
check(seeded[0] == seeded[1], "sampling with a seed repeats")

# --- 32 concurrent clients get what each gets alone (both models, chat and completions)
def job(i):
    name = base if i % 2 == 0 else adapter_name
    if i % 3 == 0:
        return client.completions.create(model=name, prompt=f"Item {i}: a fact about the number {i} is", max_tokens=20,
                                         temperature=0).choices[0].text
    if i % 3 == 1:
        return client.chat.completions.create(model=name, messages=[{"role": "user", "content": f"Name {i % 7 + 1} fruits."}],
                                              max_tokens=20, temperature=0).choices[0].message.content
    return client.completions.create(model=name, prompt=f"Story {i}:", max_tokens=20, temperature=0.8, seed=i).choices[0].text


alone = [job(i) for i in range(32)]
with concurrent.futures.ThreadPoolExecutor(32) as pool:
    together = list(pool.map(job, range(32)))
check(alone == together, f"32 concurrent clients: each gets what it gets alone ({sum(a == b for a, b in zip(alone, together))}/32)")

# --- a client that disconnects frees its sequence
sock = socket.create_connection((parsed.hostname, parsed.port))
body = json.dumps({"model": base, "prompt": "Count: 1, 2, 3,", "max_tokens": 4000, "temperature": 0, "stream": True})
sock.sendall((f"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {api_key}\r\n"
              f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n{body}").encode())
sock.recv(4096)
time.sleep(0.5)
running = raw("GET", "/health", key=None)[1]["running"]
sock.close()
deadline = time.time() + 5
while time.time() < deadline and raw("GET", "/health", key=None)[1]["running"] != 0:
    time.sleep(0.05)
check(running == 1 and raw("GET", "/health", key=None)[1]["running"] == 0,
      "a disconnected streaming client's sequence is freed")

# --- bad input: OpenAI's error shape, the right status, never a crash
def error(status, body, path="/v1/completions", key=api_key, method="POST", headers=None):
    got, parsed_body, data = raw(method, path, body, key=key, headers=headers)
    shaped = isinstance(parsed_body, dict) and isinstance(parsed_body.get("error"), dict) and \
        {"message", "type", "code"} <= parsed_body["error"].keys()
    return got == status and shaped, f"{got} {data[:160]!r}"


context = raw("GET", "/v1/models")[1]["data"][0]["max_model_len"]
cases = [
    (400, b"{not json", "malformed JSON"),
    (400, b"[1, 2]", "a body that is not an object"),
    (400, json.dumps({"prompt": "hi", "max_tokens": "ten"}).encode(), "max_tokens of the wrong type"),
    (400, json.dumps({"prompt": "hi", "temperature": "hot"}).encode(), "temperature of the wrong type"),
    (400, json.dumps({"prompt": "hi", "echo": 1}).encode(), "echo of the wrong type"),
    (400, json.dumps({"prompt": 5}).encode(), "a prompt of the wrong type"),
    (400, json.dumps({"prompt": [1, 2, 10 ** 9]}).encode(), "an unknown token id"),
    (400, json.dumps({"prompt": [-1]}).encode(), "a negative token id"),
    (400, json.dumps({"prompt": [7] * (context + 1)}).encode(), "a prompt longer than the context"),
    (400, json.dumps({"prompt": "hi", "logprobs": 99}).encode(), "logprobs out of range"),
    (400, json.dumps({"prompt": "hi", "n": 3}).encode(), "n other than 1"),
    (404, json.dumps({"prompt": "hi", "model": "no-such-model"}).encode(), "an unknown model"),
    (413, b'{"prompt": "' + b"a" * (9 << 20) + b'"}', "a body over the size limit"),
]
for status, body, what in cases:
    ok, got = error(status, body)
    check(ok, f"{what}: {status} with OpenAI's error shape ({got})")
ok, got = error(401, json.dumps({"prompt": "hi"}).encode(), key=None)
check(ok, f"no API key: 401 ({got})")
ok, got = error(401, json.dumps({"prompt": "hi"}).encode(), key="wrong")
check(ok, f"a wrong API key: 401 ({got})")
ok, got = error(400, json.dumps({"messages": [{"role": "wizard", "content": "hi"}]}).encode(), path="/v1/chat/completions")
check(ok, f"chat: an unknown role: 400 ({got})")
ok, got = error(404, None, path="/v2/nothing", method="GET")
check(ok, f"an unknown route: 404 ({got})")

# fuzz: random bodies and random shapes of real fields; any 5xx or a dropped connection fails
rng = random.Random(5)
values = [None, True, False, 0, -1, 1.5, 1e300, "", "x" * 50, [], [1], [[1, 2]], [["a"]], {}, {"a": 1}, [None], 2 ** 70]
fields = ["prompt", "max_tokens", "temperature", "top_p", "logprobs", "echo", "stop", "seed", "stream", "model", "messages",
          "n", "top_logprobs", "stream_options", "tokens", "add_special_tokens"]
paths = ["/v1/completions", "/v1/chat/completions", "/tokenize", "/detokenize"]
bad = []
for i in range(400):
    if i % 4 == 0:
        body = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
    else:
        obj = {f: rng.choice(values) for f in rng.sample(fields, rng.randrange(1, 6))}
        if rng.random() < 0.5:
            obj["prompt"] = rng.choice(["hi", [1, 2], [[3]]])
        if "max_tokens" in obj and isinstance(obj["max_tokens"], int) and not isinstance(obj["max_tokens"], bool):
            obj["max_tokens"] = min(obj["max_tokens"], 4)
        obj.pop("stream", None)
        body = json.dumps(obj).encode()
    path = rng.choice(paths)
    try:
        status, _, data = raw("POST", path, body)
    except Exception as e:  # noqa: BLE001 - a dropped connection is a failure to report, not to raise
        bad.append((path, body[:80], repr(e)))
        continue
    if status >= 500:
        bad.append((path, body[:80], status, data[:120]))
check(not bad, f"fuzz: 400 malformed or odd requests, no 5xx, no dropped connection ({bad[:3]})")
status, health, _ = raw("GET", "/health", key=None)
check(status == 200, "the server still answers after the fuzz")

tokens = raw("POST", "/tokenize", json.dumps({"prompt": text, "add_special_tokens": False}).encode())[1]
check(tokens["tokens"] == ids and tokens["count"] == len(ids), "/tokenize gives the model's token ids")
detok = raw("POST", "/detokenize", json.dumps({"tokens": ids}).encode())[1]
check(detok["prompt"] == text, "/detokenize gives the text back")
info = raw("GET", "/tokenizer_info")[1]
check("eos_token" in info and info["model_max_length"] == context, f"/tokenizer_info: {info}")

print(f"server-client-tests: {len(failures)} failed" if failures else "server-client-tests: all passed")
sys.exit(1 if failures else 0)
