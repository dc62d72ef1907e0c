# The two commands of the README:
#   make run    installs what is missing, builds, seeds the local store and runs trace_exec
#   make test   installs what is missing and runs the whole test suite (unit + integration)

CARGO ?= cargo
IG := target/release/ig
ARGS ?= --host

.PHONY: run build test test-kernels deps test-deps lint bench clean deb

deps:
	bash tests/setup/deps.sh build

test-deps:
	bash tests/setup/deps.sh test
	bash tests/setup/docker.sh
	bash tests/setup/busybox-image.sh

build: deps
	$(CARGO) build --release

run: build
	$(IG) image inspect trace_exec >/dev/null   # seeds the local store from the binary
	$(IG) image list
	$(IG) run trace_exec $(ARGS)

test: test-deps lint
	$(CARGO) build --tests
	$(CARGO) test --lib --bins --tests -- --test-threads 4

# The kernel matrix alone (also part of `make test`): one line per kernel and check,
# `<kernel-release> <check> pass|fail|unsupported (<reason>)`.
test-kernels: test-deps
	bash -o pipefail -c '$(CARGO) test --test kernels -- --nocapture --test-threads 2 2>&1 \
		| tee target/test-kernels.log | grep -E "^[^ ]+ [a-z_0-9]+ (pass|fail|unsupported)( |$$)" | sort'

# The Debian package (binary, systemd unit, completions, man pages): target/debian/ig_*.deb.
deb: build
	bash packaging/debian/deb.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

bench:
	bash tests/setup/deps.sh bench
	bash bench/run.sh

clean:
	$(CARGO) clean
