#!/bin/sh
# CLI tests: every command on the fixtures, and a one-line error with a
# non-zero exit for bad flags, files and numbers. Usage: tests/cli.sh BUILD/strix
S=${1:-build/strix}
D=${STRIX_TEST_DATA:-tests/data}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL cli: $*"; }

# expect_fail DESCRIPTION ARGS...: non-zero exit, exactly one line on stderr, no signal
expect_fail() {
    what=$1; shift
    "$S" "$@" >"$T/out" 2>"$T/err"
    rc=$?
    lines=$(wc -l <"$T/err")
    if [ $rc -ne 0 ] && [ $rc -lt 128 ] && [ "$lines" -eq 1 ]; then ok; else
        bad "$what: rc=$rc, $lines stderr lines: $(head -c 300 "$T/err")"; fi
}

M="-m $D/stories260K.bin --vocab $D/tok512.bin"
expect_fail "unknown command" frobnicate
expect_fail "unknown flag" run $M --frob 1
expect_fail "missing model" run -m "$T/none.gguf" -p hi
expect_fail "no vocabulary" run -m "$D/stories260K.bin" -p hi
expect_fail "missing vocab" run -m "$D/stories260K.bin" --vocab "$T/none.bin" -p hi
expect_fail "bad -n" run $M -p hi -n 12x
expect_fail "negative -n" run $M -p hi -n -3
expect_fail "bad temp" run $M -p hi --temp abc
expect_fail "nan temp" run $M -p hi --temp nan
expect_fail "top-p > 1" run $M -p hi --top-p 1.5
expect_fail "bad threads" run $M -p hi -t 0
expect_fail "bad seed" run $M -p hi --seed -2
expect_fail "flag without value" run $M -p
expect_fail "tokenize without text" tokenize $M
expect_fail "tokenize missing file" tokenize $M -f "$T/none.txt"
expect_fail "convert without -o" convert $M
expect_fail "convert to bad path" convert $M -o /nonexistent/dir/x.gguf
printf 'GGUF\003\000\000\000garbage' >"$T/bad.gguf"
expect_fail "corrupt gguf" info -m "$T/bad.gguf"
expect_fail "not a model" info -m "$D/tok512.inp"

# greedy run reproduces llama2.c: its -n 60 counts BOS and the 3 prompt tokens, and it prints one token per position
"$S" run $M -p "Zoo" -n 57 --temp 0 -t 1 >"$T/zoo.txt" 2>"$T/err" || bad "run: $(cat "$T/err")"
if cmp -s "$T/zoo.txt" "$D/stories260K-zoo.txt"; then ok; else
    bad "run Zoo differs: $(head -c 200 "$T/zoo.txt")"; fi
grep -q "tok/s" "$T/err" && ok || bad "run prints no speed"

# convert, then the GGUF gives the same text and the same info
"$S" convert $M -o "$T/s.gguf" 2>"$T/err" || bad "convert: $(cat "$T/err")"
"$S" run -m "$T/s.gguf" -p "Zoo" -n 57 --temp 0 -t 2 >"$T/zoo2.txt" 2>/dev/null
cmp -s "$T/zoo2.txt" "$D/stories260K-zoo.txt" && ok || bad "converted model text differs"
"$S" info -m "$T/s.gguf" >"$T/info" 2>&1 && grep -q "n_layer 5" "$T/info" && ok || bad "info: $(head -c 300 "$T/info")"

# convert re-encodes weights on request; unknown types are refused
"$S" convert -m "$D/stories3M-q80.bin" --vocab "$D/tok4096.bin" -o "$T/q8.gguf" --type Q8_0 2>/dev/null &&
    "$S" info -m "$T/q8.gguf" | grep -q "blk.0.attn_q.weight *Q8_0" && ok || bad "convert --type Q8_0"
expect_fail "convert to an unknown type" convert $M -o "$T/x.gguf" --type Q3_K

# quantize: stories260K's 172-wide FFN falls back, and the model still runs
for q in Q8_0 Q4_0; do
    "$S" quantize "$D/stories260K.bin" "$T/q.gguf" $q --vocab "$D/tok512.bin" -t 2 2>"$T/err" &&
        grep -q "ffn_down .*F32 (fallback" "$T/err" &&
        "$S" info -m "$T/q.gguf" | grep -q "blk.0.attn_q.weight *$q" &&
        out=$("$S" run -m "$T/q.gguf" -p "Once upon a time" -n 30 --temp 0 2>/dev/null) &&
        [ ${#out} -gt 40 ] && ok || bad "quantize $q: $(head -c 300 "$T/err")"
done
expect_fail "quantize to an unknown type" quantize "$D/stories260K.bin" "$T/x.gguf" Q3_K --vocab "$D/tok512.bin"
expect_fail "quantize without a type" quantize "$D/stories260K.bin" "$T/x.gguf"
expect_fail "quantize a missing file" quantize "$T/none.gguf" "$T/x.gguf" Q8_0

# beam search from the CLI: width 1 is greedy; wider beams list sorted hypotheses
g=$("$S" run -p "Once upon a time" -n 24 --temp 0 2>/dev/null)
b1=$("$S" run -p "Once upon a time" -n 24 --beams 1 2>/dev/null)
[ -n "$g" ] && [ "$g" = "$b1" ] && ok || bad "run --beams 1 equals greedy"
"$S" run -p "Once upon a time" -n 24 --beams 4 --n-best 3 2>"$T/beams.err" >/dev/null &&
    [ "$(grep -c '^\[[0-9]\] score' "$T/beams.err")" = 3 ] &&
    awk '/^\[[0-9]\] score/ { s = $3 + 0; if (NR > 1 && s > prev) bad = 1; prev = s } END { exit bad }' "$T/beams.err" &&
    ok || bad "run --beams 4 --n-best 3"
expect_fail "run --beams 0" run -p "Hi" --beams 0

# synth makes a random model of the asked shape that runs
"$S" synth -o "$T/syn.gguf" --dim 64 --ff 96 --layers 2 --heads 4 --kv-heads 1 --seed 3 2>/dev/null &&
    "$S" info -m "$T/syn.gguf" | grep -q "n_embd 64, n_ff 96, n_layer 2, n_head 4, n_head_kv 1" &&
    "$S" run -m "$T/syn.gguf" -p "Hi" -n 8 --temp 0 >/dev/null 2>&1 && ok || bad "synth"
expect_fail "synth with a bad shape" synth -o "$T/x.gguf" --dim 65 --heads 4
# synth writes any type quantize does: a k-quant mix that runs and names its types
"$S" synth -o "$T/synk.gguf" --dim 256 --ff 256 --layers 2 --heads 4 --kv-heads 2 --type Q4_K_M 2>/dev/null &&
    "$S" info -m "$T/synk.gguf" | grep -q "attn_q.weight *Q4_K" &&
    "$S" info -m "$T/synk.gguf" | grep -q "output.weight *Q6_K" &&
    "$S" run -m "$T/synk.gguf" -p "Hi" -n 8 --temp 0 >/dev/null 2>&1 && ok || bad "synth --type Q4_K_M"

# tokenize --ids matches llama.cpp's ids for one of its test strings
out=$("$S" tokenize -m "$D/ggml-vocab-llama-spm.gguf" --no-bos -p "Hello world" --ids)
[ "$out" = "15043 3186" ] && ok || bad "tokenize ids: '$out'"
out=$("$S" tokenize -m "$D/ggml-vocab-llama-spm.gguf" -p "Hello world" --ids)
[ "$out" = "1 15043 3186" ] && ok || bad "tokenize with bos: '$out'"
printf 'Hello world' >"$T/in.txt"
out=$("$S" tokenize -m "$D/ggml-vocab-llama-spm.gguf" --no-bos -f "$T/in.txt" --ids)
[ "$out" = "15043 3186" ] && ok || bad "tokenize -f: '$out'"

# byte-level BPE and special tokens (ids from llama.cpp's llama-tokenize, which
# adds BOS only where the vocabulary asks for it and parses special tokens by default)
out=$("$S" tokenize -m "$D/ggml-vocab-gpt-2.gguf" -p "Hello world, it's 12345!" --ids)
[ "$out" = "15496 995 11 340 338 17031 2231 0" ] && ok || bad "gpt2 tokenize: '$out'"
out=$("$S" tokenize -m "$D/ggml-vocab-phi-3.gguf" -p "<|user|> hi<|end|>" --ids --parse-special)
[ "$out" = "1 32010 7251 32007" ] && ok || bad "tokenize --parse-special: '$out'"
out=$("$S" tokenize -m "$D/ggml-vocab-phi-3.gguf" -p "<|user|> hi<|end|>" --ids)
[ "$out" = "1 529 29989 1792 29989 29958 7251 29966 29989 355 29989 29958" ] && ok ||
    bad "tokenize without --parse-special: '$out'"
"$S" info -m "$D/ggml-vocab-falcon.gguf" >"$T/info" 2>&1 &&
    grep -q "^tokenizer: *gpt2 (pre-tokenizer falcon)" "$T/info" &&
    grep -q "^tokenizers: .*gpt2 (byte-level BPE).*deepseek-coder" "$T/info" && ok ||
    bad "info tokenizer lines: $(cat "$T/info")"

# the same seed gives the same sampled text, at 1 and 2 threads
a=$("$S" run $M -p "Once" -n 40 --temp 0.9 --top-k 40 --top-p 0.9 --seed 7 -t 1 2>/dev/null)
b=$("$S" run $M -p "Once" -n 40 --temp 0.9 --top-k 40 --top-p 0.9 --seed 7 -t 2 2>/dev/null)
[ -n "$a" ] && [ "$a" = "$b" ] && ok || bad "seeded runs differ"

# the library example (public header only) gives the same greedy text as the CLI
EX=$(dirname "$S")/examples/generate
if [ -x "$EX" ]; then
    a=$("$EX" models/stories260K.gguf "Once upon a time" 40 2>&1)
    b=$("$S" run -m models/stories260K.gguf -p "Once upon a time" -n 40 --temp 0 2>/dev/null)
    [ -n "$a" ] && [ "$a" = "$b" ] && ok || bad "example differs: $a"
    "$EX" "$T/none.gguf" x 1 >/dev/null 2>&1 && bad "example accepted a missing file" || ok
else
    bad "no $EX"
fi

# sampling flags: a banned greedy token is never produced; --stop ends the text
# before the stop string; bad flags are one-line errors
a=$("$S" run $M -p "Once upon a time" -n 30 --temp 0 2>/dev/null)
b=$("$S" run $M -p "Once upon a time" -n 30 --temp 0 --stop "girl" 2>/dev/null)
case "$a" in *girl*) [ "$b" = "${a%%girl*}" ] && ok || bad "--stop: '$b'" ;; *) bad "no 'girl' in '$a'" ;; esac
"$S" run $M -p "Once" -n 20 --temp 0.8 --seed 2 --n-probs 3 >/dev/null 2>"$T/probs"
[ "$(grep -c '^logprob ' "$T/probs")" -ge 1 ] && ok || bad "--n-probs printed nothing"
a=$("$S" run $M -p "Once" -n 30 --seed 4 --samplers "top_k;temperature" --typical 0.9 \
    --frequency-penalty 0.2 --presence-penalty 0.1 --mirostat 2 2>/dev/null)
b=$("$S" run $M -p "Once" -n 30 --seed 4 --samplers "top_k;temperature" --typical 0.9 \
    --frequency-penalty 0.2 --presence-penalty 0.1 --mirostat 2 2>/dev/null)
[ -n "$a" ] && [ "$a" = "$b" ] && ok || bad "seeded mirostat runs differ"
expect_fail "unknown sampler stage" run $M -p hi --samplers "top_k;nope"
expect_fail "bad logit bias" run $M -p hi --logit-bias "12x"
expect_fail "logit bias out of range" run $M -p hi --logit-bias "100000+1"

# ppl: llama.cpp-style chunks and sliding windows; KL of a model against itself is 0
"$S" ppl $M -f "$D/tinystories-valid-4k.txt" -c 128 >"$T/ppl" 2>/dev/null &&
    grep -q "^PPL = " "$T/ppl" && grep -q "bits/byte" "$T/ppl" && ok || bad "ppl: $(cat "$T/ppl")"
"$S" ppl $M -f "$D/tinystories-valid-4k.txt" -c 128 --stride 64 >"$T/ppl2" 2>/dev/null &&
    grep -q "sliding windows" "$T/ppl2" && ok || bad "ppl --stride: $(cat "$T/ppl2")"
"$S" ppl $M -f "$D/tinystories-valid-4k.txt" -c 128 --kl-save "$T/base.kl" >/dev/null 2>&1 &&
    "$S" ppl $M --kl-base "$T/base.kl" >"$T/kl" 2>/dev/null &&
    grep -q "KL divergence: mean 0.000000" "$T/kl" && grep -q "same top token: 100.000%" "$T/kl" &&
    ok || bad "ppl --kl-base: $(cat "$T/kl")"
expect_fail "ppl without text" ppl $M
printf 'Once upon a time' >"$T/short.txt"
expect_fail "ppl on a short text" ppl $M -f "$T/short.txt" -c 128
expect_fail "ppl with a bad base" ppl $M --kl-base "$D/tok512.inp"

# chat without a template (story model: plain text), input piped in: the
# first answer continues the prompt as `run` does; the second turn reuses the
# cache and evaluates only its own tokens
printf 'Once upon a time\nThe dog ran.\n' | STRIX_CHAT_DEBUG=1 "$S" chat $M -n 12 --temp 0 \
    >"$T/chat" 2>"$T/chat.err"
first=$(head -n 1 "$T/chat")
r=$("$S" run $M -p "Once upon a time" -n 12 --temp 0 2>/dev/null)
[ -n "$first" ] && [ "Once upon a time$first" = "$r" ] && ok || bad "chat turn 1: '$first' vs '$r'"
[ "$(wc -l <"$T/chat")" -eq 2 ] && ok || bad "chat: $(cat "$T/chat")"
grep -q "template plain" "$T/chat.err" && ok || bad "chat template: $(head -c 200 "$T/chat.err")"
grep "tokens in the cache" "$T/chat.err" | tail -n 1 >"$T/turn2"
n_cached=$(sed 's/.*chat: \([0-9]*\) tokens.*/\1/' "$T/turn2")
n_new=$(sed 's/.*, \([0-9]*\) new.*/\1/' "$T/turn2")
# cached: the first prompt (with BOS) and the 11 answer tokens decoded (the
# 12th ended the answer); new: the 12th and the second line, no more
n_p=$("$S" tokenize $M -p "Once upon a time" --ids | wc -w)
n_l=$("$S" tokenize $M --no-bos -p "$(printf '\nThe dog ran.')" --ids | wc -w)
[ "$n_cached" -eq $((n_p + 11)) ] && [ "$n_new" -le $((n_l + 1)) ] && ok ||
    bad "chat cache reuse: $(cat "$T/turn2") (prompt $n_p, line $n_l)"
expect_fail "chat with an unknown template" chat $M --chat-template nope </dev/null

echo "tests/cli.sh: $pass passed, $fail failed"
[ $fail -eq 0 ]
