# The two commands of the README:
#   make run    installs what is missing, builds, seeds the local store and runs trace_exec
#   make test   installs what is missing and runs the whole test suite (unit + integration)

CARGO ?= cargo
IG := target/release/ig
ARGS ?= --host

.PHONY: run build test test-kernels deps test-deps lint bench clean image fuzz deb

deps:
	bash tests/setup/deps.sh build

test-deps:
	bash tests/setup/deps.sh test
	bash tests/setup/docker.sh
	bash tests/setup/busybox-image.sh

build: deps
	$(CARGO) build --release

# The container image (packaging/image/build.sh): built from scratch, nothing pulled.
IMAGE ?= ig:dev
image: build
	bash packaging/image/build.sh $(IG) $(IMAGE)

run: build
	$(IG) image inspect trace_exec >/dev/null   # seeds the local store from the binary
	$(IG) image list
	$(IG) run trace_exec $(ARGS)

test: test-deps lint
	$(CARGO) build --tests
	$(CARGO) test --no-fail-fast --lib --bins --tests -- --test-threads 4

# The kernel matrix alone (also part of `make test`): one line per kernel and check,
# `<kernel-release> <check> pass|fail|unsupported (<reason>)`.
test-kernels: test-deps
	bash -o pipefail -c '$(CARGO) test --test kernels -- --nocapture --test-threads 2 2>&1 \
		| tee target/test-kernels.log | grep -E "^[^ ]+ [a-z_0-9-]+ (pass|fail|unsupported)( |$$)" | sort'

# The Debian package (binary, systemd unit, completions, man pages): target/debian/ig_*.deb.
deb: build
	bash packaging/debian/deb.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

bench:
	bash tests/setup/deps.sh bench
	bash bench/run.sh

# make fuzz: builds every target of fuzz/ (cargo-fuzz, libFuzzer; its own workspace, which
# `make test` does not build), seeds the corpora and runs each target for FUZZ_SECONDS, one at a
# time, at low priority. cargo-fuzz passes nightly-only flags (-Zsanitizer=address); with only a
# stable toolchain here, RUSTC_BOOTSTRAP=1 lets stable rustc accept them. Crashes are left in
# fuzz/artifacts/<target>/; keep each as a regression test (tests/fixtures/fuzz-regressions/).
FUZZ_SECONDS ?= 600
FUZZ_ENV := RUSTC_BOOTSTRAP=1
# 16 codegen units (cargo-fuzz's default is 1) build faster on two cores; build and run take the
# same options, or run rebuilds.
FUZZ_BUILD := --codegen-units 16
fuzz:
	command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz
	cd fuzz && $(FUZZ_ENV) cargo fuzz build $(FUZZ_BUILD)
	$(CARGO) build
	fuzz/seed.sh $(CURDIR)/target/debug/ig
	cd fuzz && for t in $$(cargo fuzz list); do \
		$(FUZZ_ENV) nice -n 19 cargo fuzz run $(FUZZ_BUILD) $$t corpus/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) -jobs=1 -workers=1 -rss_limit_mb=2048 -timeout=20 \
			-print_final_stats=1 || exit 1; \
		echo "== $$t"; grep -E '^#[0-9]+' fuzz-0.log | tail -n 1; grep '^stat::' fuzz-0.log; \
	done; \
	if ls artifacts/*/* >/dev/null 2>&1; then echo "fuzz: crashing inputs:"; ls artifacts/*/*; exit 1; fi

clean:
	$(CARGO) clean
