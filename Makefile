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
PKGS     := libpng libjpeg libzip json-c libgif zlib
CFLAGS   += $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS   += $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lgif -ldnnl -lm
LDFLAGS  += -fopenmp $(SAN)

LIB_SRC  := $(sort $(wildcard src/*/*.c))
CLI_SRC  := $(sort $(wildcard cli/*.c))
TEST_SRC := $(sort $(wildcard tests/*.c))
BENCH_SRC:= $(sort $(wildcard bench/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/%.o)
DEPS     := $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_OBJ:.o=.d)

.PHONY: all test test-asan check bench install clean format
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

install: $(BUILD)/libganedit.a $(BUILD)/libganedit.so $(BUILD)/ganedit
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 755 $(BUILD)/ganedit $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(BUILD)/libganedit.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/libganedit.so $(DESTDIR)$(PREFIX)/lib/
	install -m 644 include/ganedit.h $(DESTDIR)$(PREFIX)/include/
	sed -e 's|@PREFIX@|$(PREFIX)|' ganedit.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/ganedit.pc

format:
	clang-format -i include/*.h src/*/*.[ch] cli/*.[ch] tests/*.[ch] bench/*.c

clean:
	rm -rf build build-*

-include $(DEPS)
