# strix - build with `make` (release), `make debug`, `make asan`, `make test`,
# `make install PREFIX=/usr/local`. Outputs go under build/ (release),
# build/debug/ and build/asan/.

CC ?= cc
PREFIX ?= /usr/local
BUILD ?= build
OPT ?= -O2

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla -Werror
CFLAGS_ALL := -std=c11 $(OPT) -g $(WARN) -fPIC -Iinclude -Isrc $(EXTRA_CFLAGS)
LDLIBS := -lm -lpthread

SRC := $(wildcard src/*.c)
OBJ := $(SRC:src/%.c=$(BUILD)/obj/%.o)
TOOL_SRC := $(wildcard tools/*.c)
TOOL_OBJ := $(TOOL_SRC:tools/%.c=$(BUILD)/tools/%.o)
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)

.PHONY: all release debug asan test test-asan check install clean format fuzz tests examples

all: $(BUILD)/strix $(BUILD)/libstrix.a $(BUILD)/libstrix.so

release: all

debug:
	$(MAKE) BUILD=build/debug OPT="-O0" all

asan:
	$(MAKE) BUILD=build/asan OPT="-O1" \
	  EXTRA_CFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
	  EXTRA_LDFLAGS="-fsanitize=address,undefined" all tests

# The instruction-set kernels get their sets' flags (x86-64 only; elsewhere
# those files compile to nothing and the scalar reference runs).
ifeq ($(shell uname -m),x86_64)
AVX2_FLAGS := -mavx2 -mfma -mf16c
$(BUILD)/obj/kernels_avx2.o: CFLAGS_ALL += $(AVX2_FLAGS) -O3
$(BUILD)/obj/kernels_avx512.o: CFLAGS_ALL += $(AVX2_FLAGS) -O3 -mavx512f -mavx512bw -mavx512vl \
  -mavx512dq -mavx512vnni
endif

$(BUILD)/obj/%.o: src/%.c $(wildcard src/*.h) include/strix.h | $(BUILD)/obj
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(BUILD)/tools/%.o: tools/%.c $(wildcard tools/*.h) include/strix.h | $(BUILD)/tools
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(BUILD)/libstrix.a: $(OBJ)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/libstrix.so: $(OBJ)
	$(CC) -shared $(EXTRA_LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/strix: $(TOOL_OBJ) $(BUILD)/libstrix.a
	$(CC) $(EXTRA_LDFLAGS) -o $@ $(TOOL_OBJ) $(BUILD)/libstrix.a $(LDLIBS)

$(BUILD)/tests/%: tests/%.c tests/harness.h tests/fixtures.h $(BUILD)/libstrix.a | $(BUILD)/tests
	$(CC) $(CFLAGS_ALL) $(EXTRA_LDFLAGS) -o $@ $< $(BUILD)/libstrix.a $(LDLIBS)

tests: $(TEST_BIN) examples

# Programs that use only the public header, linked like a user would.
EXAMPLE_SRC := $(wildcard examples/*.c)
EXAMPLE_BIN := $(EXAMPLE_SRC:examples/%.c=$(BUILD)/examples/%)
examples: $(EXAMPLE_BIN)
$(BUILD)/examples/%: examples/%.c include/strix.h $(BUILD)/libstrix.a
	@mkdir -p $(dir $@)
	$(CC) -std=c11 $(OPT) $(WARN) $(EXTRA_CFLAGS) $(EXTRA_LDFLAGS) -Iinclude -o $@ $< $(BUILD)/libstrix.a $(LDLIBS)

$(BUILD)/obj $(BUILD)/tools $(BUILD)/tests:
	mkdir -p $@

# Unit, golden and robustness tests on the release build.
test: all tests
	BUILD=$(BUILD) tests/run.sh

# The same tests built with AddressSanitizer + UndefinedBehaviorSanitizer.
test-asan: asan
	BUILD=build/asan tests/run.sh

# What CI runs: release tests, then the sanitizer pass (one after the other,
# so the logs stay readable).
check:
	$(MAKE) test
	$(MAKE) test-asan

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 755 $(BUILD)/strix $(DESTDIR)$(PREFIX)/bin/strix
	install -m 644 $(BUILD)/libstrix.a $(BUILD)/libstrix.so $(DESTDIR)$(PREFIX)/lib/
	install -m 644 include/strix.h $(DESTDIR)$(PREFIX)/include/strix.h
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|0.1.0|g' strix.pc.in \
	  > $(DESTDIR)$(PREFIX)/lib/pkgconfig/strix.pc

# libFuzzer targets (clang): build/fuzz/fuzz_*; run e.g. build/fuzz/fuzz_gguf -max_total_time=60 DIR
FUZZ_SRC := $(wildcard tests/fuzz_*.c)
fuzz: $(FUZZ_SRC:tests/%.c=build/fuzz/%)
build/fuzz/%: tests/%.c $(SRC) | build/fuzz
	clang -std=c11 -O1 -g -fsanitize=fuzzer,address,undefined -Iinclude -Isrc -o $@ $< $(SRC) -lm -lpthread
build/fuzz:
	mkdir -p $@

format:
	clang-format -i include/*.h src/*.c src/*.h tools/*.c tests/*.c tests/*.h examples/*.c

clean:
	rm -rf build
