# ganedit build. Plain make: every .c under src/ goes into libganedit, every .c
# under cli/ into the ganedit program, every tests/test_*.c into one test runner.
# BUILD=dir puts objects elsewhere (parallel builds of one tree, sanitizer builds).

CC       ?= cc
BUILD    ?= build
PREFIX   ?= /usr/local
DESTDIR  ?=
OPT      ?= -O2 -g
SAN      ?=
CFLAGS   += -std=c11 -Wall -Wextra -Wno-unused-parameter $(OPT) -fopenmp -fPIC \
            -D_GNU_SOURCE -Iinclude -Isrc $(SAN)
PKGS     := libpng libjpeg libzip json-c libgif zlib libmicrohttpd
CFLAGS   += $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS   += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lgif -ldnnl -lm
LDFLAGS  += -fopenmp $(SAN)
# Open MPI, optional (Debian's libopenmpi-dev): `ganedit project --targets`
# shards its images over the ranks when launched by mpirun (docs/batch.md).
# Only the program links it; the library and the test runner do not.
MPI_LIBS := $(shell pkg-config --libs ompi-c 2>/dev/null)
ifneq ($(MPI_LIBS),)
CFLAGS   += $(shell pkg-config --cflags ompi-c) -DGE_HAVE_MPI
$(BUILD)/ganedit: LDLIBS += $(MPI_LIBS)
endif

LIB_SRC  := $(sort $(wildcard src/*/*.c))
CLI_SRC  := $(sort $(wildcard cli/*.c))
TEST_SRC := $(sort $(wildcard tests/*.c))
BENCH_SRC:= $(sort $(wildcard bench/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o)
DEPS     := $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_OBJ:.o=.d)

.PHONY: all test test-asan check bench install clean format web-test
all: $(BUILD)/libganedit.a $(BUILD)/libganedit.so $(BUILD)/ganedit $(BUILD)/run_tests

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libganedit.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libganedit.so: $(LIB_OBJ)
	$(CC) -shared $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/ganedit: $(CLI_OBJ) $(BUILD)/libganedit.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/run_tests: $(TEST_OBJ) $(BUILD)/libganedit.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tools/%: tools/%.c $(BUILD)/libganedit.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

$(BUILD)/bench/%: bench/%.c $(BUILD)/libganedit.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

# Runs the whole suite; TEST=substring runs the tests whose name contains it.
# Passive OpenMP waiting: on a busy 2-core machine spinning threads slow the
# many small calls of the suite down tenfold (benchmarks keep the default).
test: $(BUILD)/run_tests $(BUILD)/ganedit
	OMP_WAIT_POLICY=passive $(BUILD)/run_tests $(TEST)

# The same suite under AddressSanitizer + UndefinedBehaviorSanitizer.
test-asan:
	$(MAKE) BUILD=build-asan OPT="-O1 -g" \
	  SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
	  build-asan/run_tests build-asan/ganedit
	OMP_WAIT_POLICY=passive ASAN_OPTIONS=detect_leaks=1 build-asan/run_tests $(TEST)

# What CI runs: the normal suite, then the sanitizer suite.
check: test test-asan

bench: $(BENCH_SRC:%.c=$(BUILD)/%)
	bench/run.sh $(BUILD)

# The local web editor's tests (docs/web.md): the JSON API under bad input,
# the page in headless Chromium (Debian's chromium + playwright-core from npm,
# installed into tests/web/node_modules), and a loopback load test. Needs
# node and npm; the browser test also writes docs/images/web_*.png.
web-test: $(BUILD)/ganedit
	cd tests/web && { [ -d node_modules/playwright-core ] || npm ci --no-audit --no-fund; }
	GANEDIT_BIN=$(abspath $(BUILD))/ganedit node tests/web/api_test.mjs
	GANEDIT_BIN=$(abspath $(BUILD))/ganedit node tests/web/e2e_test.mjs
	GANEDIT_BIN=$(abspath $(BUILD))/ganedit node tests/web/load_test.mjs

install: $(BUILD)/libganedit.a $(BUILD)/libganedit.so $(BUILD)/ganedit
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 755 $(BUILD)/ganedit $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(BUILD)/libganedit.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/libganedit.so $(DESTDIR)$(PREFIX)/lib/
	install -m 644 include/ganedit.h $(DESTDIR)$(PREFIX)/include/
	install -d $(DESTDIR)$(PREFIX)/share/ganedit/web $(DESTDIR)$(PREFIX)/share/ganedit/models
	install -m 644 models/*.safetensors $(DESTDIR)$(PREFIX)/share/ganedit/models/
	install -m 644 web/* $(DESTDIR)$(PREFIX)/share/ganedit/web/
	sed -e 's|@PREFIX@|$(PREFIX)|' ganedit.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/ganedit.pc

format:
	clang-format -i include/*.h src/*/*.[ch] cli/*.[ch] tests/*.[ch] bench/*.c

clean:
	rm -rf build build-*

-include $(DEPS)

# ---- Fuzzing (libFuzzer, Debian's clang 14; see docs/fuzzing.md) ---------
# Each fuzz/fuzz_<target>.c is linked with the io and core sources (and the
# option parser), all built with ASan + UBSan and coverage into $(FUZZ_BUILD).
# fuzz-ci: every target for FUZZ_TIME seconds (default 20); fuzz: the long
# campaign, FUZZ_CAMPAIGN_TIME seconds per target (default 1800); fuzz-cov:
# source coverage of the corpora. FUZZ_TARGETS=... picks targets.
FUZZ_CC      ?= clang
FUZZ_BUILD   ?= build-fuzz
FUZZ_TIME    ?= 20
FUZZ_CAMPAIGN_TIME ?= 1800
FUZZ_TARGETS ?= safetensors npy torch_zip torch_legacy pickle image cli
FUZZ_PKGS    := libpng libjpeg libzip json-c zlib
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_CFLAGS  := -std=c11 -g -O1 -Wall -Wextra -Wno-unused-parameter -D_GNU_SOURCE -Iinclude -Isrc \
                -Icli $(shell pkg-config --cflags $(FUZZ_PKGS) 2>/dev/null) $(FUZZ_SAN)
FUZZ_LIBS    := $(shell pkg-config --libs $(FUZZ_PKGS) 2>/dev/null) -lgif -lm
FUZZ_OBJ     := $(patsubst %.c,$(FUZZ_BUILD)/obj/%.o,$(wildcard src/core/*.c src/io/*.c) cli/args.c)

.PHONY: fuzz fuzz-ci fuzz-build fuzz-seeds fuzz-cov
.SECONDARY: $(FUZZ_OBJ)
$(FUZZ_BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(FUZZ_BUILD)/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz_common.h $(FUZZ_OBJ)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(filter-out %/cli/args.o,$(FUZZ_OBJ)) \
	  $(if $(filter fuzz_cli,$(notdir $@)),$(FUZZ_BUILD)/obj/cli/args.o) $(FUZZ_LIBS)

fuzz-build: $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)

fuzz-seeds:
	fuzz/seed_corpus.sh $(FUZZ_BUILD)/seeds

fuzz-ci: fuzz-build fuzz-seeds
	fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_TIME) $(FUZZ_TARGETS)

fuzz: fuzz-build fuzz-seeds
	fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_CAMPAIGN_TIME) $(FUZZ_TARGETS)

# Line/branch coverage of src/io and cli/args.c reached by the corpora (llvm-cov).
fuzz-cov:
	fuzz/coverage.sh $(FUZZ_BUILD)

-include $(FUZZ_OBJ:.o=.d)
