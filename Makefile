# pygrad -- developer entry points.  See README.md for the two user commands.
PYTHON ?= python3
CC ?= cc
CFLAGS_STRICT = -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror -pedantic -ffp-contract=off
# The library is every csrc/*.c but the C tests (pygrad/_build.py says the same).
CSRC = $(filter-out csrc/test_%,$(wildcard csrc/*.c))
CHDR = $(wildcard csrc/*.h)
SAN = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer

.PHONY: build test test-c test-isa sanitize valgrind fuzz bench bench-quick latency peak dist check-dist clean

# Editable install: compiles csrc/ through cffi into pygrad/_pygrad_c*.so.
build:
	$(PYTHON) -m pip install -q cffi setuptools wheel
	$(PYTHON) -m pip install -q --no-build-isolation -e '.[test]'

# The test command of README.md (and of .ci/run): build, C tests, pytest.
test: build test-c
	$(PYTHON) -m pytest

csrc/test_pygrad: $(CSRC) $(CHDR) csrc/test_pygrad.c
	$(CC) -O2 $(CFLAGS_STRICT) -Icsrc $(CSRC) csrc/test_pygrad.c -o $@ -lm -lpthread

# test_map_order: the library built with a seam in map.c's block loop (see
# the test), so it is a binary of its own
csrc/test_map_order: $(CSRC) $(CHDR) csrc/test_map_order.c
	$(CC) -O2 $(CFLAGS_STRICT) -DPG_TEST_TAKEN=pg_test_taken -Icsrc $(CSRC) \
	  csrc/test_map_order.c -o $@ -lm -lpthread

# test_pool: the worker pool's job protocol under stress (pool.c alone)
csrc/test_pool: csrc/pool.c csrc/pool.h csrc/test_pool.c
	$(CC) -O2 $(CFLAGS_STRICT) -Icsrc csrc/pool.c csrc/test_pool.c -o $@ -lpthread

test-c: csrc/test_pygrad csrc/test_map_order csrc/test_pool test-isa
	./csrc/test_pygrad
	./csrc/test_map_order
	./csrc/test_pool

# layer.c's kernels, built for each vector unit this machine has (the
# library picks one at load time): the same bits from each.  And the C tests
# against a build with no clones (clones.h) at all, as on a machine without
# AVX2: jacobian.c's sweep there against the scalar backward, bit for bit.  (Binaries in
# csrc/, as test_pygrad: a build/ directory in the checkout's root would
# shadow the `build` package the packaging test runs.)
ISAS = default avx2 avx512f
test-isa:
	@rm -f csrc/test_layer_bits.txt && for isa in $(ISAS); do \
	  if [ $$isa != default ] && ! grep -qw $$isa /proc/cpuinfo 2>/dev/null; then continue; fi; \
	  flag=$$([ $$isa = default ] || echo -m$$isa); \
	  $(CC) -O3 $(CFLAGS_STRICT) -DPG_NO_CLONES $$flag -Icsrc csrc/layer.c csrc/test_layer_bits.c \
	    -o csrc/test_layer_bits_$$isa || exit 1; \
	  out=$$(./csrc/test_layer_bits_$$isa) || { echo "test_layer_bits ($$isa) failed"; exit 1; }; \
	  echo "$$isa $$out" | tee -a csrc/test_layer_bits.txt; \
	done; \
	test $$(cut -d' ' -f2 csrc/test_layer_bits.txt | sort -u | wc -l) = 1 || \
	  { echo "layer.c: different bits for different vector units"; exit 1; }
	@$(CC) -O2 $(CFLAGS_STRICT) -DPG_NO_CLONES -Icsrc $(CSRC) csrc/test_pygrad.c \
	  -o csrc/test_pygrad_baseline -lm -lpthread && \
	  ./csrc/test_pygrad_baseline | sed 's/^/baseline build: /'

csrc/test_pygrad_san: $(CSRC) $(CHDR) csrc/test_pygrad.c
	$(CC) -O1 -g $(SAN) $(CFLAGS_STRICT) -Icsrc $(CSRC) csrc/test_pygrad.c -o $@ -lm -lpthread

csrc/test_pool_san: csrc/pool.c csrc/pool.h csrc/test_pool.c
	$(CC) -O1 -g $(SAN) $(CFLAGS_STRICT) -Icsrc csrc/pool.c csrc/test_pool.c -o $@ -lpthread

csrc/test_map_order_san: $(CSRC) $(CHDR) csrc/test_map_order.c
	$(CC) -O1 -g $(SAN) $(CFLAGS_STRICT) -DPG_TEST_TAKEN=pg_test_taken -Icsrc $(CSRC) \
	  csrc/test_map_order.c -o $@ -lm -lpthread

# C tests, then the whole Python suite, against an ASan+UBSan build of the
# library.  The sanitized extension is built in a copy of the tree
# (build/sanitize), so the normal build stays installed.  LD_PRELOAD puts the
# ASan runtime first, as an uninstrumented python needs, and libstdc++ with
# it (C++ extensions such as matplotlib's throw through ASan's interceptor);
# leak checking is off for the interpreter (CPython keeps memory at exit;
# the C tests' leaks are valgrind's job).  Reports go to build/sanitize/asan.*.
SAN_DIR = build/sanitize
sanitize: csrc/test_pygrad_san csrc/test_map_order_san csrc/test_pool_san
	./csrc/test_pygrad_san
	./csrc/test_map_order_san
	./csrc/test_pool_san
	rm -rf $(SAN_DIR) && mkdir -p $(SAN_DIR)
	cp -r csrc tests examples pyproject.toml $(SAN_DIR)/
	mkdir $(SAN_DIR)/pygrad && cp -r pygrad/*.py pygrad/bench $(SAN_DIR)/pygrad/
	cd $(SAN_DIR) && PYGRAD_SANITIZE=1 $(PYTHON) pygrad/_build.py >/dev/null
	cd $(SAN_DIR) && \
	  LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libstdc++.so)" \
	  ASAN_OPTIONS=detect_leaks=0:log_path=asan UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:log_path=ubsan \
	  $(PYTHON) -m pytest -q -p no:cacheprovider -m "not sanitizer_incompatible" tests
	@! ls $(SAN_DIR)/asan.* $(SAN_DIR)/ubsan.* 2>/dev/null || (cat $(SAN_DIR)/asan.* $(SAN_DIR)/ubsan.* 2>/dev/null | head -50; false)

# A long differential fuzzing run against pygrad.reference (CI runs 300).
FUZZ_EXAMPLES ?= 20000
fuzz: build
	PYGRAD_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(PYTHON) -m pytest -q -s tests/test_fuzz.py

# The machine's memory latency (a dependent random load), next to which the
# benchmark's 1e7-node figures are read.
latency:
	mkdir -p build && $(CC) -O2 -Wall -Wextra -Werror pygrad/bench/latency.c -o build/latency
	./build/latency

# The machine's peak double-precision multiply-add rate on one core (FMA
# chains over registers), next to which the benchmark's training steps (ns
# per multiply-add) are read: the widest vectors the CPU has, and the target
# pygrad's extension is compiled for (no -march, no FMA contraction).  The
# benchmark runs the same (pygrad/bench/peak.py).
peak:
	mkdir -p build
	$(CC) -O2 -march=native -ffp-contract=fast -Wall -Wextra -Werror pygrad/bench/peak.c -o build/peak-native
	$(CC) -O2 -ffp-contract=off -Wall -Wextra -Werror pygrad/bench/peak.c -o build/peak-as-built
	@echo "native:   $$(./build/peak-native)"
	@echo "as built: $$(./build/peak-as-built)"

# The C tests under valgrind memcheck: no errors, no leaks.
valgrind: csrc/test_pygrad
	valgrind --leak-check=full --errors-for-leak-kinds=all --error-exitcode=1 \
	  ./csrc/test_pygrad 100000

# The stress benchmark of README.md (python -m pygrad.bench), a minute; and
# its few-second version.  Both write bench-results.{json,md,png}.
bench: build
	$(PYTHON) -m pygrad.bench

bench-quick: build
	$(PYTHON) -m pygrad.bench --quick

# The sdist and the wheel, in dist/ (pip install build).
dist:
	$(PYTHON) -m build

# The packaging checks alone (make test runs them too): the sdist is complete
# and installs into a fresh venv, the wheel's tag matches its extension, the
# stubs match the code and mypy --strict passes a user's script.  Needs the
# package registry, and build and mypy installed.
check-dist:
	$(PYTHON) -m pytest -q tests/test_packaging.py tests/test_typing.py

clean:
	rm -rf build dist *.egg-info pygrad/*.so pygrad/_pygrad_c.c pygrad/_pygrad_c.o \
	  csrc/test_pygrad csrc/test_pygrad_san csrc/test_pygrad_baseline csrc/test_map_order \
	  csrc/test_map_order_san csrc/test_pool csrc/test_pool_san \
	  csrc/test_layer_bits_* csrc/test_layer_bits.txt \
	  .pytest_cache .hypothesis
	find . -name __pycache__ -type d -exec rm -rf {} +
