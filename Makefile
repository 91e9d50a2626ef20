# Thin wrapper over CMake presets. `make demo` and `make test` install what
# they need first (Debian packages via scripts/deps.sh).
.PHONY: all deps build release asan tsan test unit integration demo bench format check-format clean

all: build

deps:
	@bash scripts/deps.sh

build: deps
	@cmake --preset dev >/dev/null
	@cmake --build --preset dev

release: deps
	@cmake --preset release >/dev/null
	@cmake --build --preset release

asan: deps
	@cmake --preset ci >/dev/null
	@cmake --build --preset ci

# ThreadSanitizer on the modules that do not touch Kafka (TSan crashes
# inside Debian's librdkafka).
tsan: deps
	@cmake --preset tsan >/dev/null
	@cmake --build --preset tsan --target unit_test_metrics unit_test_httpd unit_test_retry unit_test_log unit_test_conf unit_test_time unit_test_strmap unit_test_subs_verify
	@ctest --preset tsan

# The whole suite, built with AddressSanitizer + UBSan and -Werror.
test: asan
	@ctest --preset ci

unit: asan
	@ctest --preset ci -L unit

integration: asan
	@ctest --preset ci -L integration

# The fleet on the embedded broker with a scripted chat scenario.
demo: release
	@bash scripts/demo.sh

# Benchmarks (never part of the test suite).
bench: release
	@bash scripts/bench-unread.sh
	@bash scripts/bench-unread-groups.sh
	@bash scripts/bench-fanout.sh
	@bash scripts/bench-guard.sh
	@bash scripts/bench-sqs.sh
	@bash scripts/bench-push.sh
	@bash scripts/bench-email.sh
	@bash scripts/bench-subs.sh
	@bash scripts/bench-subs-google.sh

format:
	@git ls-files '*.c' '*.h' | xargs clang-format -i

check-format:
	@git ls-files '*.c' '*.h' | xargs clang-format --dry-run -Werror

clean:
	@rm -rf build
