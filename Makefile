# Everything a fresh Debian/Ubuntu machine needs: `make demo`, `make test`.
SWIFT ?= swift

.PHONY: deps model demo test docs lint sanitize fuzz bench bench-peers fixtures clean

deps:
	@scripts/install-deps

model: deps
	@scripts/fetch-model >/dev/null

# The main job, the whole loop: measure the base (over-refusal, multiple choice, perplexity),
# fine-tune a LoRA adapter on the int8 base, measure every checkpoint and the adapter, write
# the report (scripts/demo; everything lands in .build/demo, report.md printed).
demo: model
	$(SWIFT) build -c release --product lora
	scripts/demo "$$(scripts/fetch-model)" .build/demo

# Release build: numeric tests on real model sizes crawl at -O0. The benchmark suites
# are test targets too, and are skipped here (`make bench` runs them).
test: model
	scripts/lint
	$(SWIFT) build -c release --build-tests
	SWIFT_LORA_MODEL="$$(scripts/fetch-model)" $(SWIFT) test -c release --skip-build --skip Benchmarks
	scripts/test-cli
	scripts/test-mpi
	scripts/test-mpi-two-hosts
	scripts/test-server
	scripts/test-lm-eval
	scripts/test-consumer
	scripts/check-docs

# swift-format's rules (.swift-format) and line lengths; `swift format -i -r Sources Tests
# Examples Benchmarks Package.swift` applies them.
lint:
	scripts/lint

# The unit tests under AddressSanitizer and UndefinedBehaviorSanitizer (.build-sanitize).
sanitize: model
	scripts/sanitize

# Coverage-guided fuzzing of every reader (Tests/Fuzz, libFuzzer under ASan): each target
# for FUZZ_SECONDS from its seeds; any crash fails (inputs kept in .build-fuzz/crashes).
FUZZ_SECONDS ?= 60
fuzz:
	scripts/fuzz $(FUZZ_SECONDS)

# The DocC catalogs (Sources/*/*.docc), built without a warning; the archives land in
# .build/plugins/Swift-DocC/outputs.
docs:
	scripts/check-docs

bench: model
	$(SWIFT) build -c release --build-tests
	$(SWIFT) test -c release --skip-build --filter KernelBenchmarks
	SWIFT_LORA_MODEL="$$(scripts/fetch-model)" $(SWIFT) test -c release --skip-build --filter InferenceBenchmarks
	SWIFT_LORA_MODEL="$$(scripts/fetch-model)" $(SWIFT) test -c release --skip-build --filter TrainingBenchmarks
	scripts/bench-server
	@python3 -c 'import numpy' 2>/dev/null || python3 -m pip install --quiet numpy
	python3 scripts/peer-numpy-sgemm.py

# llama.cpp and PyTorch on the same model and threads (builds llama-cpp-python: ~7 minutes).
PEERS ?= .build/peers
bench-peers: model
	$(SWIFT) build -c release --product lora
	test -x $(PEERS)/bin/python || python3 -m venv $(PEERS)
	CMAKE_ARGS=-DGGML_NATIVE=ON $(PEERS)/bin/pip install --quiet llama-cpp-python==0.3.36 torch transformers accelerate gguf
	$(PEERS)/bin/python scripts/peer-inference.py "$$(scripts/fetch-model)"
	$(PEERS)/bin/pip install --quiet torch==2.13.0 peft
	$(PEERS)/bin/python scripts/peer-training.py "$$(scripts/fetch-model)" 2

# Regenerates the reference fixtures the tests read (transformers, tokenizers, Jinja2, llama.cpp).
fixtures: model
	test -x $(PEERS)/bin/python || python3 -m venv $(PEERS)
	CMAKE_ARGS=-DGGML_NATIVE=ON $(PEERS)/bin/pip install --quiet llama-cpp-python==0.3.36 torch transformers accelerate \
		gguf tokenizers sentencepiece protobuf jinja2
	$(PEERS)/bin/python scripts/make-smollm2-fixtures.py "$$(scripts/fetch-model)"
	$(PEERS)/bin/python scripts/make-tiny-llama2-fixtures.py
	$(PEERS)/bin/pip install --quiet peft safetensors
	$(PEERS)/bin/python scripts/make-smollm2-lora-gradient-fixtures.py "$$(scripts/fetch-model)"
	$(PEERS)/bin/python scripts/make-optimizer-fixtures.py
	$(PEERS)/bin/python scripts/make-mc-fixtures.py "$$(scripts/fetch-model)"
	$(SWIFT) build -c release --product lora
	$(PEERS)/bin/python scripts/make-peft-interop-fixtures.py "$$(scripts/fetch-model)"
	$(PEERS)/bin/python scripts/make-llama-cpp-export-fixtures.py
	$(PEERS)/bin/python scripts/make-llama-cpp-quality-fixtures.py "$$(scripts/fetch-model)"
	$(PEERS)/bin/python scripts/make-synthetic-llama-cpp-fixtures.py
	$(PEERS)/bin/python scripts/make-q5-dequant-fixtures.py
	python3 scripts/make-judge-template-fixtures.py

clean:
	rm -rf .build
