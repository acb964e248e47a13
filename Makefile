# Everything a fresh Debian/Ubuntu machine needs: `make demo`, `make test`.
SWIFT ?= swift

.PHONY: deps model demo test bench clean

deps:
	@scripts/install-deps

model: deps
	@scripts/fetch-model >/dev/null

demo: model
	$(SWIFT) build -c release --product lora
	.build/release/lora kernels --model "$$(scripts/fetch-model)"

# Release build: numeric tests on real model sizes crawl at -O0. The benchmark suites
# are test targets too, and are skipped here (`make bench` runs them).
test: model
	$(SWIFT) build -c release --build-tests
	$(SWIFT) test -c release --skip-build --skip Benchmarks
	scripts/test-consumer

bench: model
	$(SWIFT) build -c release --build-tests
	$(SWIFT) test -c release --skip-build --filter KernelBenchmarks
	@python3 -c 'import numpy' 2>/dev/null || python3 -m pip install --quiet numpy
	python3 scripts/peer-numpy-sgemm.py

clean:
	rm -rf .build
