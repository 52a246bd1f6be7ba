#!/usr/bin/env python3
"""Makes tests/data/vocab/extra.inp and the extra-*.out files: extra strings
tokenized by llama.cpp's llama-tokenize, for each vocabulary, without and with
special-token parsing.

usage: scripts/tokenizer_extra.py LLAMA_TOKENIZE VOCAB_DIR OUT_DIR
VOCAB_DIR holds llama.cpp's ggml-vocab-*.gguf files. "gpt2-PRE" outputs use a
copy of ggml-vocab-gpt-2.gguf whose tokenizer.ggml.pre is PRE.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

# The extra strings; written with escapes so this file stays ASCII.
S = [
 "Hello, World! HELLO world's IT'S WE'LL they'RE I'M you'VE he'D",
 "naïve café résumé Ångström Straße ΕΛΛΗΝΙΚΑ ελληνικά Привет мир",
 "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3002\u4e2d\u6587\uff0c\u6d4b\u8bd5\uff01\ud55c\uad6d\uc5b4 \ud14d\uc2a4\ud2b8",
 "emoji: \U0001F600\U0001F680 \U0001F468\u200d\U0001F469\u200d\U0001F467 \U0001F1FA\U0001F1F8 \u2764\ufe0f",
 "   leading spaces and trailing   ",
 "tabs\tand\t\ttabs\n\nnew\r\nlines\r\n\r\n   \n",
 "\u00a0nbsp\u00a0\u00a0runs\u3000ideographic\u3000space \u2003em\u2028line\u2029para\u0085nel",
 "12345678901234567890 3.14159 1,000,000 0x1F 1e-9 \u0661\u0662\u0663 \u2160\u2161 \u00bd",
 "int main(void) {\n    return printf(\"%d\\n\", a[i] + b->c);\n}\n",
 "def f(x):\n\tif x <= 0: return -x  # comment\n\treturn x ** 2\n",
 "<html><body class=\"x\">&amp; &lt;tag&gt;</body></html>",
 "!!!???...,,,;;;:::---___===+++***&&&%%%$$$###@@@",
 "a  b   c    d     e      f       g        h",
 "                                                  fifty spaces",
 "Ｆｕｌｌｗｉｄｔｈ　ＡＢＣ１２３！？",
 "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645\u060c \u0647\u0630\u0627 \u0627\u062e\u062a\u0628\u0627\u0631\u06d4 \u0928\u092e\u0938\u094d\u0924\u0947 \u0926\u0941\u0928\u093f\u092f\u093e\u0964",
 "combining: e\u0301 a\u0308 n\u0303 \u0915\u093f \u0e01\u0e33",
 "math: \u2200x\u2208\u211d, x\u00b2 \u2265 0 \u21d2 \u221ax \u2211\u222b \u00b1\u00d7\u00f7",
 "<s>Hello</s> <unk> </s>  after",
 "<|endoftext|>Hi<|endoftext|> there <|endoftext|>",
 "<|im_start|>user\nhi<|im_end|>",
 "<|user|>\nWhat is 2+2? <|end|>\n<|assistant|>\n4<|end|>",
 "<fim_prefix>def f():\n<fim_suffix>\n    return 1<fim_middle>",
 ">>TITLE<<\n>>ABSTRACT<< text >>QUESTION<<",
 "<\uff5cbegin\u2581of\u2581sentence\uff5c>Hi<\uff5cend\u2581of\u2581sentence\uff5c>",
 "<|padding|>  pad   [PAD50428] \u00f5\u00f7",
 "x\n\n\n\n\n\ny \r\r\r z\t\t\t\n",
 "'''quotes''' \"dq\" `bt` 'single' don't won't can't",
 "URL: https://example.com/path?q=1&r=two#frag mail@example.org",
 "\u00e9\u00e8\u00ea\u00eb \u0131\u0130 \u00df\u1e9e \u0149 \ufb01\ufb02",
 "\u2581\u2581 already-escaped \u2581spaces and \u0120G \u010a",
 "x",
 " ",
 "\n",
]
# invalid UTF-8 and a NUL-free binary-ish string, as bytes
B = [b"bad \xff\xfe bytes \xc3\x28 \xe2\x82 \xf0\x9f\x98", b"overlong \xc0\xaf surrogate \xed\xa0\x80 end"]

SEP = b"\n__ggml_vocab_test__\n"
FILES = ["llama-spm", "phi-3", "gpt-2", "falcon", "mpt", "starcoder", "refact", "deepseek-llm",
         "deepseek-coder"]
PRES = ["llama-bpe", "qwen2", "deepseek-v3", "default", "poro-chat", "tekken", "chameleon", "viking"]
SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}


def with_pre(src, dst, pre):
    """Copies a GGUF file without tensors, setting tokenizer.ggml.pre."""
    d = open(src, "rb").read()
    pos = [4]

    def rd(fmt):
        v = struct.unpack_from("<" + fmt, d, pos[0])
        pos[0] += struct.calcsize("<" + fmt)
        return v

    def skip(t):
        if t == 8:
            n, = rd("Q")
            pos[0] += n
        elif t == 9:
            at, n = rd("IQ")
            for _ in range(n if at == 8 else 0):
                skip(8)
            if at != 8:
                pos[0] += SIZES[at] * n
        else:
            pos[0] += SIZES[t]

    ver, n_tensors, n_kv = rd("IQQ")
    assert n_tensors == 0
    out = [d[:4], struct.pack("<IQQ", ver, n_tensors, n_kv)]
    for _ in range(n_kv):
        start = pos[0]
        n, = rd("Q")
        key = d[pos[0]:pos[0] + n]
        pos[0] += n
        t, = rd("I")
        val = pos[0]
        skip(t)
        if key == b"tokenizer.ggml.pre":
            out.append(d[start:val] + struct.pack("<Q", len(pre)) + pre.encode())
        else:
            out.append(d[start:pos[0]])
    open(dst, "wb").write(b"".join(out) + d[pos[0]:])


def main():
    tokenize, vocab_dir, out_dir = sys.argv[1:4]
    cases = [s.encode("utf-8", "surrogatepass") for s in S] + B
    open(os.path.join(out_dir, "extra.inp"), "wb").write(SEP.join(cases))
    tmp = tempfile.mkdtemp()
    vocabs = [(n, os.path.join(vocab_dir, "ggml-vocab-%s.gguf" % n)) for n in FILES]
    for p in PRES:
        path = os.path.join(tmp, "gpt2-%s.gguf" % p)
        with_pre(os.path.join(vocab_dir, "ggml-vocab-gpt-2.gguf"), path, p)
        vocabs.append(("gpt2-" + p, path))
    case = os.path.join(tmp, "case.txt")
    for name, path in vocabs:
        for special in (0, 1):
            lines = []
            for s in cases:
                open(case, "wb").write(s)
                cmd = [tokenize, "-m", path, "-f", case, "--ids", "--log-disable", "--no-bos",
                       "--no-escape"] + ([] if special else ["--no-parse-special"])
                r = subprocess.run(cmd, capture_output=True, check=True)
                ids = json.loads(r.stdout.decode().strip().splitlines()[-1])
                lines.append(" ".join(map(str, ids)))
            suffix = "-special" if special else ""
            with open(os.path.join(out_dir, "extra-%s%s.out" % (name, suffix)), "w") as f:
                f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
