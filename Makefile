# strix - build with `make` (release), `make debug`, `make asan`, `make tsan`,
# `make test`, `make install PREFIX=/usr/local`. Outputs go under build/
# (release), build/debug/, build/asan/ and build/tsan/.

CC ?= cc
PREFIX ?= /usr/local
BUILD ?= build
OPT ?= -O2

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla -Werror
CFLAGS_ALL := -std=c11 $(OPT) -g $(WARN) -fPIC -Iinclude -Isrc $(EXTRA_CFLAGS)
LDLIBS := -lpcre2-8 -lm -lpthread -ldl
# LAPACK and BLAS (OpenBLAS; Debian liblapacke-dev libopenblas-dev) for the
# hidden-state statistics of `strix analyze` and `prune --linearize`
# (src/analysis/stats.c, the only file that includes their headers). Found
# through pkg-config; without them stats.c builds without them and those
# calls return STRIX_ERR_UNSUPPORTED (pruning by magnitude, Wanda, N:M and
# dropped layers needs no LAPACK). HAVE_LAPACK=0 forces a build without.
# Not linked: stats.c loads the libraries with dlopen when first used, so
# other commands never start OpenBLAS's threads.
LAPACK_PKGS := lapacke openblas
HAVE_LAPACK ?= $(shell pkg-config --exists $(LAPACK_PKGS) 2>/dev/null && echo 1)
ifeq ($(HAVE_LAPACK),1)
FILE_CFLAGS_stats := -DSTRIX_HAVE_LAPACK $(shell pkg-config --cflags $(LAPACK_PKGS))
endif
# The shared library's ABI version: libstrix.so.$(SOVERSION), with libstrix.so
# a link to it.
SOVERSION := 0

# The library: src/*.c and one level of folders (src/format, src/kernels, ...).
SRC := $(wildcard src/*.c src/*/*.c)
HDR := $(wildcard src/*.h src/*/*.h) include/strix.h include/strix_dev.h
OBJ := $(SRC:src/%.c=$(BUILD)/obj/%.o)
TOOL_SRC := $(wildcard tools/*.c)
TOOL_OBJ := $(TOOL_SRC:tools/%.c=$(BUILD)/tools/%.o)
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)

.PHONY: all release debug asan tsan test test-asan test-tsan check install clean format fuzz fuzz-lib \
  tests examples test-server test-server-asan test-server-tsan

all: $(BUILD)/strix $(BUILD)/libstrix.a $(BUILD)/libstrix.so

release: all

debug:
	$(MAKE) BUILD=build/debug OPT="-O0" all

# (the sanitizer builds compile the kernel files at -O1 too: at -O3 each of
# them takes minutes under the sanitizers)
asan:
	$(MAKE) BUILD=build/asan OPT="-O1" ISA_OPT="-O1" \
	  EXTRA_CFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
	  EXTRA_LDFLAGS="-fsanitize=address,undefined" all tests

# ThreadSanitizer build of the library and the tests that run threads
# (shared pools, concurrent decodes, router training over the pool).
TSAN_TESTS := test_api test_ffn_variants test_lora
tsan:
	$(MAKE) BUILD=build/tsan OPT="-O1" ISA_OPT="-O1" EXTRA_CFLAGS="-fsanitize=thread -fno-omit-frame-pointer" \
	  EXTRA_LDFLAGS="-fsanitize=thread" build/tsan/libstrix.so $(TSAN_TESTS:%=build/tsan/tests/%) \
	  $(if $(HAVE_SERVE),build/tsan/strix build/tsan/strix-serve)

# The instruction-set kernels get their sets' flags (x86-64 only; elsewhere
# those files compile to nothing and the scalar reference runs).
ifeq ($(shell uname -m),x86_64)
AVX2_FLAGS := -mavx2 -mfma -mf16c
AVX512_FLAGS := $(AVX2_FLAGS) -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni
endif
ISA_FLAGS_kernels_avx2 := $(AVX2_FLAGS)
ISA_FLAGS_kernels_avx2_k := $(AVX2_FLAGS)
ISA_FLAGS_kernels_avxvnni := $(AVX2_FLAGS) $(if $(AVX2_FLAGS),-mavxvnni)
ISA_FLAGS_kernels_avxvnni_k := $(ISA_FLAGS_kernels_avxvnni)
ISA_FLAGS_kernels_avx512 := $(AVX512_FLAGS)
ISA_FLAGS_kernels_gemm := $(AVX512_FLAGS) $(if $(AVX512_FLAGS),-mavx512bf16)
ISA_FLAGS_kernels_avx512y := $(AVX512_FLAGS)
ISA_FLAGS_kernels_avx512y_k := $(AVX512_FLAGS)
ISA_FLAGS_kernels_kv_avx2 := $(AVX2_FLAGS)
ISA_FLAGS_kernels_kv_avx512 := $(AVX512_FLAGS)
ISA_OPT ?= -O3
# the avxvnni set's files and the avx512 set's 256-bit ones are the avx2
# set's, built again
$(BUILD)/obj/kernels/kernels_avxvnni.o: src/kernels/kernels_avx2.c
$(BUILD)/obj/kernels/kernels_avxvnni_k.o: src/kernels/kernels_avx2_k.c
$(BUILD)/obj/kernels/kernels_avx512y.o: src/kernels/kernels_avx2.c
$(BUILD)/obj/kernels/kernels_avx512y_k.o: src/kernels/kernels_avx2_k.c
isa_flags = $(if $(ISA_FLAGS_$(basename $(notdir $(1)))),$(ISA_FLAGS_$(basename $(notdir $(1)))) $(ISA_OPT))

$(BUILD)/obj/%.o: src/%.c $(HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(call isa_flags,$<) $(FILE_CFLAGS_$(basename $(notdir $<))) -c $< -o $@

# The tool looks for the bundled model beside itself, then in these two.
TOOL_DEFS := -DSTRIX_DATADIR='"$(PREFIX)/share/strix"' -DSTRIX_SRCDIR='"$(CURDIR)"'

# The server (tools/serve/, `strix serve`) is built when libmicrohttpd and
# cJSON are installed (scripts/deps.sh); without them `strix serve` says so.
# The library never links them, nor does strix: the server is its own
# program, strix-serve (tools/serve/main.c), which `strix serve` executes
# from its own folder, so other commands do not load the libraries.
SERVE_PKGS := libmicrohttpd libcjson
HAVE_SERVE := $(shell pkg-config --exists $(SERVE_PKGS) 2>/dev/null && echo 1)
ifeq ($(HAVE_SERVE),1)
all: $(BUILD)/strix-serve
SERVE_OBJ := $(patsubst tools/serve/%.c,$(BUILD)/tools/serve/%.o,$(filter-out tools/serve/main.c, \
  $(wildcard tools/serve/*.c))) $(BUILD)/tools/serve/page.o
SERVE_CFLAGS := $(shell pkg-config --cflags $(SERVE_PKGS))
SERVE_LIBS := $(shell pkg-config --libs $(SERVE_PKGS))
TOOL_DEFS += -DSTRIX_SERVE
endif
$(BUILD)/tools/serve/%.o: tools/serve/%.c $(wildcard tools/serve/*.h) tools/cli.h include/strix.h include/strix_dev.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(SERVE_CFLAGS) $(TOOL_DEFS) -c $< -o $@
# the chat page, one C string
$(BUILD)/tools/serve/page.c: tools/serve/page.html
	@mkdir -p $(dir $@)
	{ echo 'const char serve_page_html[] ='; sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' \
	  -e 's/^/"/' -e 's/$$/\\n"/' $<; echo ';'; } > $@
$(BUILD)/tools/serve/page.o: $(BUILD)/tools/serve/page.c
	$(CC) $(CFLAGS_ALL) -c $< -o $@
$(BUILD)/tools/%.o: tools/%.c $(wildcard tools/*.h) include/strix.h include/strix_dev.h | $(BUILD)/tools
	$(CC) $(CFLAGS_ALL) $(TOOL_DEFS) -c $< -o $@

$(BUILD)/libstrix.a: $(OBJ)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/libstrix.so.$(SOVERSION): $(OBJ)
	$(CC) -shared -Wl,-soname,libstrix.so.$(SOVERSION) $(EXTRA_LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/libstrix.so: $(BUILD)/libstrix.so.$(SOVERSION)
	ln -sf libstrix.so.$(SOVERSION) $@

$(BUILD)/strix: $(TOOL_OBJ) $(BUILD)/libstrix.a
	$(CC) $(EXTRA_LDFLAGS) -o $@ $(TOOL_OBJ) $(BUILD)/libstrix.a $(LDLIBS)
SERVE_MAIN_OBJ := $(BUILD)/tools/serve/main.o $(SERVE_OBJ) $(BUILD)/tools/cli.o $(BUILD)/tools/sampling.o
$(BUILD)/strix-serve: $(SERVE_MAIN_OBJ) $(BUILD)/libstrix.a
	$(CC) $(EXTRA_LDFLAGS) -o $@ $(SERVE_MAIN_OBJ) $(BUILD)/libstrix.a $(LDLIBS) $(SERVE_LIBS)

# MPI (optional): strix-mpi, the strix tool with pipeline-parallel run/ppl/bench/serve over
# MPI (tools/mpi/), is built beside strix when mpicc is found (Debian:
# libopenmpi-dev, openmpi-bin); MPI=1 requires it, MPI=0 skips it. mpicc
# compiles with $(CC) (OMPI_CC, MPICH_CC).
MPICC ?= mpicc
MPI ?= $(if $(shell command -v $(MPICC) 2>/dev/null),1,0)
MPI_CC := OMPI_CC=$(CC) MPICH_CC=$(CC) $(MPICC)
ifeq ($(MPI),1)
all: $(BUILD)/strix-mpi
endif
MPI_TOOL_OBJ := $(filter-out $(BUILD)/tools/strix.o,$(TOOL_OBJ)) $(BUILD)/tools/mpi/strix.o \
  $(BUILD)/tools/mpi/pipeline.o $(BUILD)/tools/mpi/drivers.o $(BUILD)/tools/mpi/serve.o
$(BUILD)/tools/mpi/strix.o: tools/strix.c $(wildcard tools/*.h) include/strix.h include/strix_dev.h
	@mkdir -p $(dir $@)
	$(MPI_CC) $(CFLAGS_ALL) $(TOOL_DEFS) -DSTRIX_MPI -c $< -o $@
$(BUILD)/tools/mpi/%.o: tools/mpi/%.c tools/mpi/pipeline.h $(wildcard tools/*.h) include/strix.h include/strix_dev.h
	@mkdir -p $(dir $@)
	$(MPI_CC) $(CFLAGS_ALL) -c $< -o $@
$(BUILD)/strix-mpi: $(MPI_TOOL_OBJ) $(SERVE_OBJ) $(BUILD)/libstrix.a
	$(MPI_CC) $(EXTRA_LDFLAGS) -o $@ $(MPI_TOOL_OBJ) $(SERVE_OBJ) $(BUILD)/libstrix.a $(LDLIBS) \
	  $(SERVE_LIBS)

# (tests find the shared library, for its soname, through STRIX_LIBDIR)
$(BUILD)/tests/%: tests/%.c tests/harness.h tests/fixtures.h tests/spec_fixture.h tests/stage_fixture.h \
  $(BUILD)/libstrix.a | $(BUILD)/tests
	$(CC) $(CFLAGS_ALL) -DSTRIX_TEST_DATA_DEFAULT='"$(CURDIR)/tests/data"' -DSTRIX_LIBDIR='"$(abspath $(BUILD))"' \
	  $(EXTRA_LDFLAGS) -o $@ $< \
	  $(BUILD)/libstrix.a $(LDLIBS)

# (test_spec_draw checks the server's draft test, a header of tools/serve)
$(BUILD)/tests/test_spec_draw: tools/serve/spec_draw.h

tests: $(TEST_BIN) examples

# Programs that use only the public header, linked like a user would.
EXAMPLE_SRC := $(wildcard examples/*.c)
EXAMPLE_BIN := $(EXAMPLE_SRC:examples/%.c=$(BUILD)/examples/%)
examples: $(EXAMPLE_BIN)
$(BUILD)/examples/%: examples/%.c include/strix.h $(BUILD)/libstrix.a
	@mkdir -p $(dir $@)
	$(CC) -std=c11 $(OPT) $(WARN) $(EXTRA_CFLAGS) $(EXTRA_LDFLAGS) -Iinclude -o $@ $< $(BUILD)/libstrix.a $(LDLIBS)

$(BUILD)/tools $(BUILD)/tests:
	mkdir -p $@

# Unit, golden and robustness tests on the release build.
test: all tests
	BUILD=$(BUILD) tests/run.sh

# The same tests built with AddressSanitizer + UndefinedBehaviorSanitizer.
test-asan: asan
	BUILD=build/asan tests/run.sh

# The threaded tests under ThreadSanitizer (a few seconds).
test-tsan: tsan
	for t in $(TSAN_TESTS); do STRIX_TEST_DATA=tests/data TSAN_OPTIONS=halt_on_error=1 \
	  build/tsan/tests/$$t || exit 1; done

# The server's tests (tests/server/run.sh, Node.js; skipped without server
# support): on the release build, then (all but the browser test) under
# ASan/UBSan, and under TSan (the scheduler and the connection threads).
test-server: all
	sh tests/server/run.sh $(BUILD)/strix
SERVER_SAN_TESTS := tests/server/api.test.js tests/server/faults.test.js \
  tests/server/features.test.js
test-server-asan: asan
	STRIX_SANITIZED=1 sh tests/server/run.sh build/asan/strix $(SERVER_SAN_TESTS)
test-server-tsan: tsan
	STRIX_SANITIZED=1 TSAN_OPTIONS=halt_on_error=1 sh tests/server/run.sh build/tsan/strix \
	  $(SERVER_SAN_TESTS)

# What CI runs: release tests, then the sanitizer passes (one after the
# other, so the logs stay readable).
check:
	sh scripts/check_layers.sh
	$(MAKE) test
	$(MAKE) test-asan
	$(MAKE) test-tsan
	$(MAKE) test-server
	$(MAKE) test-server-asan
	$(MAKE) test-server-tsan

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include \
	  $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 755 $(BUILD)/strix $(DESTDIR)$(PREFIX)/bin/strix
	$(if $(HAVE_SERVE),install -m 755 $(BUILD)/strix-serve $(DESTDIR)$(PREFIX)/bin/strix-serve)
	install -m 644 $(BUILD)/libstrix.a $(BUILD)/libstrix.so.$(SOVERSION) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libstrix.so.$(SOVERSION) $(DESTDIR)$(PREFIX)/lib/libstrix.so
	install -m 644 include/strix.h $(DESTDIR)$(PREFIX)/include/strix.h
	install -d $(DESTDIR)$(PREFIX)/share/strix
	install -m 644 models/stories260K.gguf $(DESTDIR)$(PREFIX)/share/strix/stories260K.gguf
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|0.1.0|g' strix.pc.in \
	  > $(DESTDIR)$(PREFIX)/lib/pkgconfig/strix.pc

# libFuzzer targets (clang): build/fuzz/fuzz_*; scripts/fuzz.sh builds and runs
# them all on their seed corpora (tests/fuzz/corpus/). The library is built
# once more with clang and the fuzzer's instrumentation, once for all
# targets: each kernel file with its own instruction-set flags, as above, at
# -O0 (clang with ASan/UBSan takes 1-2 minutes per kernel file at -O1 and
# seconds at -O0; the fuzzers exercise parsing, and the kernels run under
# the sanitizers in `make test-asan`).
FUZZ_CFLAGS := -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
ifneq ($(HAVE_SERVE),1)
FUZZ_SRC := $(filter-out tests/fuzz/fuzz_request.c,$(FUZZ_SRC))
endif
fuzz: $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)
fuzz-lib:
	$(MAKE) CC=clang BUILD=build/fuzz/lib OPT=-O1 ISA_OPT=-O0 EXTRA_CFLAGS="$(FUZZ_CFLAGS)" \
	  build/fuzz/lib/libstrix.a
build/fuzz/%: tests/fuzz/%.c fuzz-lib
	clang -std=c11 -O1 -g -fsanitize=fuzzer,address,undefined -Iinclude -Isrc -o $@ $< \
	  build/fuzz/lib/libstrix.a $(LDLIBS)
# the server's request parsing (tools/serve/request.c) needs cJSON
build/fuzz/fuzz_request: tests/fuzz/fuzz_request.c tools/serve/request.c tools/serve/request.h \
  tools/serve/json.c tools/serve/serve.h fuzz-lib
	clang -std=c11 -O1 -g -fsanitize=fuzzer,address,undefined -Iinclude -Isrc $(SERVE_CFLAGS) -o $@ $< \
	  build/fuzz/lib/libstrix.a $(LDLIBS) $(SERVE_LIBS)

format:
	clang-format -i include/*.h $(SRC) $(wildcard src/*.h src/*/*.h) tools/*.c tools/*.h tests/*.c tests/*.h \
	  tests/fuzz/*.c examples/*.c

clean:
	rm -rf build
