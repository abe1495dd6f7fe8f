# samepage - top-level driver.  `make demo` and `make test` are all a fresh
# machine needs: missing Debian packages are installed first (as root), and
# each target installs only what it needs: building and running (`make`,
# `make demo`), plus the sanitizer runtimes (`make test`), plus clang and
# its libFuzzer runtime (`make fuzz`).
BUILD      ?= build
BUILD_ASAN ?= build-asan
BUILD_TSAN ?= build-tsan
JOBS       ?= $(shell nproc)
PREFIX     ?= /usr/local
BUILD_DEPS := cmake make gcc pkg-config libxxhash-dev libnuma-dev
TEST_DEPS  := $(BUILD_DEPS) libasan8 libubsan1 libtsan2
FUZZ_DEPS  := $(BUILD_DEPS) clang libclang-rt-14-dev

.PHONY: all deps deps-test deps-fuzz test test-fast demo demo-sim bench install stress fuzz \
	numa clean FORCE

all: $(BUILD)/samepage

deps:
	@./scripts/install-deps.sh $(BUILD_DEPS)

# (after deps, so that two installs never run at once under make -j)
deps-test: deps
	@./scripts/install-deps.sh $(TEST_DEPS)

deps-fuzz: deps
	@./scripts/install-deps.sh $(FUZZ_DEPS)

$(BUILD)/Makefile: CMakeLists.txt | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

$(BUILD)/samepage: deps $(BUILD)/Makefile FORCE
	$(MAKE) -s -C $(BUILD) -j$(JOBS)

FORCE:

# Every test through ctest, then the AddressSanitizer+UBSan build of the same
# tests, then the threaded real-memory tests under ThreadSanitizer.
test: deps-test $(BUILD)/samepage
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)
	cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DSANITIZE=address,undefined >/dev/null
	$(MAKE) -s -C $(BUILD_ASAN) -j$(JOBS)
	cd $(BUILD_ASAN) && ctest --output-on-failure -j$(JOBS) -LE vm
	cmake -S . -B $(BUILD_TSAN) -DCMAKE_BUILD_TYPE=Debug -DSANITIZE=thread >/dev/null
	$(MAKE) -s -C $(BUILD_TSAN) -j$(JOBS)
	cd $(BUILD_TSAN) && ctest --output-on-failure -j$(JOBS) -L threaded

test-fast: $(BUILD)/samepage
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

# Worker processes giving memory back under one daemon (explains why and shows
# the simulated story instead when userfaultfd is not permitted); demo-sim tells
# the NUMA story on the simulated machine.
demo: $(BUILD)/samepage
	$(BUILD)/samepage demo

demo-sim: $(BUILD)/samepage
	$(BUILD)/samepage demo --sim

bench: $(BUILD)/samepage
	$(BUILD)/samepage bench --sim
	$(BUILD)/samepage bench

# A long no-lost-writes run on real memory (writers racing the scanner,
# unmerge/re-merge and run switches), in one process and then in three
# clients of the daemon; prints the merges done.  Not in `make test`.
STRESS_SECONDS ?= 150
STRESS_PAGES   ?= 4096
stress: $(BUILD)/samepage
	SAMEPAGE_STRESS_SECONDS=$(STRESS_SECONDS) SAMEPAGE_STRESS_PAGES=$(STRESS_PAGES) \
		$(BUILD)/real_nolostwrites
	SAMEPAGE_BUILD_DIR=$(BUILD) SAMEPAGE_STRESS_SECONDS=$(STRESS_SECONDS) \
		SAMEPAGE_STRESS_PAGES=$(STRESS_PAGES) $(BUILD)/daemon_nolostwrites
	SAMEPAGE_BUILD_DIR=$(BUILD) SAMEPAGE_RUN_THREADS=1 $(BUILD)/run_all_threads

# Coverage-guided fuzzing of the scenario interpreter with libFuzzer (clang).
FUZZ_SECONDS ?= 60
fuzz: deps-fuzz
	mkdir -p $(BUILD)
	clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc/sim -Isrc/core -Iinclude \
		tests/fuzz/sim_fuzz.c src/sim/[a-z]*.c src/core/[a-z]*.c -lxxhash -o $(BUILD)/sim_fuzz
	mkdir -p $(BUILD)/fuzz-corpus   # new inputs go here; the scenarios only seed it
	$(BUILD)/sim_fuzz -max_len=4096 -max_total_time=$(FUZZ_SECONDS) \
		$(BUILD)/fuzz-corpus tests/scenarios

# The seeds' stories on two real NUMA nodes (a qemu machine, scripts/numa-vm.sh),
# told to the kernel's KSM and to libsamepage: one table, exit 0 when all agree.
numa: $(BUILD)/samepage
	SAMEPAGE_VM_CACHE=$(CURDIR)/$(BUILD)/numa-vm ./scripts/numa-vm.sh $(BUILD)/numa_stories

install: $(BUILD)/samepage
	cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_TSAN)
