#!/usr/bin/env python3
"""Convert a CTranslate2 Whisper model (faster-whisper's model.bin + vocabulary.txt) to the ggml
file format that whisper.cpp loads.

Usage: ct2_to_ggml.py MODEL_DIR OUT.bin
       ct2_to_ggml.py --self-test

MODEL_DIR holds model.bin (magic spec name "WhisperSpec") and vocabulary.txt. Needs only numpy.
The layout follows whisper.cpp's models/convert-pt-to-ggml.py: hyperparameters, the mel filter
bank, the byte-level vocabulary up to <|endoftext|>, then every tensor (2-D and larger ones in
f16, the rest and the position tables in f32). CTranslate2 stores attention projections fused
(query+key+value in one matrix), so they are split here; whisper has no key bias, and a nonzero
one is refused rather than dropped. A quantized (int8/int16) CTranslate2 model is refused too:
it would need its scales, which this converter does not apply.
"""

import re
import struct
import sys

import numpy as np

DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}
GGML_MAGIC = 0x67676D6C
# Tensors whisper.cpp reads as f32 even in an f16 file.
KEEP_F32 = ("encoder.conv1.bias", "encoder.conv2.bias", "encoder.positional_embedding",
            "decoder.positional_embedding")


def fail(msg):
    raise SystemExit(f"ct2_to_ggml: {msg}")


class Reader:
    """Reads CTranslate2's model.bin: a version, the spec name, a revision, then named arrays."""

    def __init__(self, data):
        self.data = data
        self.off = 0

    def take(self, fmt):
        size = struct.calcsize(fmt)
        if self.off + size > len(self.data):
            fail(f"model.bin is truncated at byte {self.off}")
        values = struct.unpack_from(fmt, self.data, self.off)
        self.off += size
        return values

    def string(self):
        (n,) = self.take("<H")
        raw = self.data[self.off:self.off + n]
        if len(raw) != n:
            fail(f"model.bin is truncated at byte {self.off}")
        self.off += n
        return raw.rstrip(b"\0").decode("utf-8")

    def model(self):
        (version,) = self.take("<I")
        spec = self.string()
        (_revision,) = self.take("<I")
        (count,) = self.take("<I")
        variables = {}
        for _ in range(count):
            name = self.string()
            (rank,) = self.take("<B")
            dims = self.take(f"<{rank}I") if rank else ()
            (dtype,) = self.take("<B")
            (nbytes,) = self.take("<I")
            raw = self.data[self.off:self.off + nbytes]
            if len(raw) != nbytes:
                fail(f"model.bin is truncated in {name}")
            self.off += nbytes
            kind = DTYPES.get(dtype)
            if kind is None:
                fail(f"{name} has unknown data type {dtype}")
            if kind == "bfloat16":
                words = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
                array = words.view(np.float32).reshape(dims)
            else:
                array = np.frombuffer(raw, dtype=kind).reshape(dims)
            variables[name] = array
        return version, spec, variables


def bytes_to_unicode():
    """GPT-2's byte <-> printable character table, which Whisper's vocabulary is written in."""
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
          + list(range(ord("®"), ord("ÿ") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


# The Slaney mel scale: linear below 1 kHz, logarithmic above.
MEL_F_SP = 200.0 / 3
MEL_MIN_LOG_HZ = 1000.0
MEL_MIN_LOG_MEL = MEL_MIN_LOG_HZ / MEL_F_SP
MEL_LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(f):
    f = np.asanyarray(f, dtype=np.float64)
    return np.where(f >= MEL_MIN_LOG_HZ,
                    MEL_MIN_LOG_MEL + np.log(np.maximum(f, 1e-10) / MEL_MIN_LOG_HZ) / MEL_LOGSTEP,
                    f / MEL_F_SP)


def mel_to_hz(m):
    m = np.asanyarray(m, dtype=np.float64)
    return np.where(m >= MEL_MIN_LOG_MEL,
                    MEL_MIN_LOG_HZ * np.exp(MEL_LOGSTEP * (m - MEL_MIN_LOG_MEL)), MEL_F_SP * m)


def mel_filters(sr=16000, n_fft=400, n_mels=80):
    """The Slaney-normalised mel filter bank Whisper was trained with (librosa's defaults)."""
    fftfreqs = np.linspace(0, sr / 2, 1 + n_fft // 2)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    w = np.zeros((n_mels, len(fftfreqs)))
    for i in range(n_mels):
        w[i] = np.maximum(0, np.minimum(-ramps[i] / fdiff[i], ramps[i + 2] / fdiff[i + 1]))
    w *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, None]
    return w.astype(np.float32)


def layer_count(variables, prefix):
    pattern = re.compile(rf"{prefix}/layer_(\d+)/")
    return len({m.group(1) for k in variables for m in [pattern.match(k)] if m})


def tensors(v):
    """whisper.cpp's tensor names -> arrays, from CTranslate2's variables."""
    def get(name):
        if name not in v:
            fail(f"model.bin has no {name}: not a Whisper model in the expected layout")
        array = v[name]
        if array.dtype in (np.int8, np.int16, np.int32):
            fail(f"{name} is quantized ({array.dtype}); convert from a float16/float32 model")
        return np.asarray(array, dtype=np.float32)

    out = {}

    def linear(dst, src):
        out[dst + ".weight"] = get(src + "/weight")
        out[dst + ".bias"] = get(src + "/bias")

    def norm(dst, src):
        out[dst + ".weight"] = get(src + "/gamma")
        out[dst + ".bias"] = get(src + "/beta")

    def split(src, dsts):
        w = get(src + "/weight")
        b = get(src + "/bias")
        d = w.shape[0] // len(dsts)
        for j, dst in enumerate(dsts):
            out[dst + ".weight"] = w[j * d:(j + 1) * d]
            if dst.endswith(".key"):
                if np.abs(b[j * d:(j + 1) * d]).max() != 0:
                    fail(f"{src} has a nonzero key bias, which whisper.cpp has no place for")
            else:
                out[dst + ".bias"] = b[j * d:(j + 1) * d]

    # Encoder and decoder layers share these two blocks; tensors are written in this order.
    def self_attention(s, d):
        norm(d + ".attn_ln", s + "/self_attention/layer_norm")
        split(s + "/self_attention/linear_0", [d + ".attn.query", d + ".attn.key", d + ".attn.value"])
        linear(d + ".attn.out", s + "/self_attention/linear_1")

    def mlp(s, d):
        norm(d + ".mlp_ln", s + "/ffn/layer_norm")
        linear(d + ".mlp.0", s + "/ffn/linear_0")
        linear(d + ".mlp.2", s + "/ffn/linear_1")

    out["encoder.positional_embedding"] = get("encoder/position_encodings/encodings")
    out["encoder.conv1.weight"] = get("encoder/conv1/weight")
    out["encoder.conv1.bias"] = get("encoder/conv1/bias").reshape(-1, 1)
    out["encoder.conv2.weight"] = get("encoder/conv2/weight")
    out["encoder.conv2.bias"] = get("encoder/conv2/bias").reshape(-1, 1)
    norm("encoder.ln_post", "encoder/layer_norm")
    for i in range(layer_count(v, "encoder")):
        s, d = f"encoder/layer_{i}", f"encoder.blocks.{i}"
        self_attention(s, d)
        mlp(s, d)
    out["decoder.token_embedding.weight"] = get("decoder/embeddings/weight")
    out["decoder.positional_embedding"] = get("decoder/position_encodings/encodings")
    norm("decoder.ln", "decoder/layer_norm")
    for i in range(layer_count(v, "decoder")):
        s, d = f"decoder/layer_{i}", f"decoder.blocks.{i}"
        self_attention(s, d)
        norm(d + ".cross_attn_ln", s + "/attention/layer_norm")
        linear(d + ".cross_attn.query", s + "/attention/linear_0")
        split(s + "/attention/linear_1", [d + ".cross_attn.key", d + ".cross_attn.value"])
        linear(d + ".cross_attn.out", s + "/attention/linear_2")
        mlp(s, d)
    return out


def vocabulary(words):
    """The regular tokens (those before <|endoftext|>) as raw bytes."""
    if "<|endoftext|>" not in words:
        fail("vocabulary.txt has no <|endoftext|>")
    table = {c: b for b, c in bytes_to_unicode().items()}
    tokens = []
    for word in words[:words.index("<|endoftext|>")]:
        try:
            tokens.append(bytes(table[c] for c in word))
        except KeyError as e:
            fail(f"vocabulary.txt token {word!r} has a character outside the byte table: {e}")
    return tokens


def write_ggml(out, hparams, filters, tokens, named):
    out.write(struct.pack("<i", GGML_MAGIC))
    out.write(struct.pack("<11i", *hparams, 1))  # ftype 1: f16
    out.write(struct.pack("<ii", *filters.shape))
    out.write(filters.tobytes())
    out.write(struct.pack("<i", len(tokens)))
    for t in tokens:
        out.write(struct.pack("<i", len(t)))
        out.write(t)
    for name, data in named.items():
        f32 = data.ndim < 2 or name in KEEP_F32
        data = np.ascontiguousarray(data.astype(np.float32 if f32 else np.float16))
        raw_name = name.encode()
        out.write(struct.pack("<iii", data.ndim, len(raw_name), 0 if f32 else 1))
        for i in range(data.ndim):
            out.write(struct.pack("<i", data.shape[data.ndim - 1 - i]))
        out.write(raw_name)
        out.write(data.tobytes())


def convert(model_dir, out_path):
    try:
        with open(f"{model_dir}/model.bin", "rb") as f:
            data = f.read()
        with open(f"{model_dir}/vocabulary.txt", encoding="utf-8") as f:
            words = f.read().split("\n")
    except OSError as e:
        fail(f"cannot read the model: {e}")
    _version, spec, v = Reader(data).model()
    if spec != "WhisperSpec":
        fail(f"model.bin is a {spec!r}, not a WhisperSpec")
    named = tensors(v)
    n_vocab, n_text_state = named["decoder.token_embedding.weight"].shape
    n_audio_ctx, n_audio_state = named["encoder.positional_embedding"].shape
    n_text_ctx = named["decoder.positional_embedding"].shape[0]
    n_mels = named["encoder.conv1.weight"].shape[1]
    hparams = (n_vocab, n_audio_ctx, n_audio_state, int(v["encoder/num_heads"]),
               layer_count(v, "encoder"), n_text_ctx, n_text_state, int(v["decoder/num_heads"]),
               layer_count(v, "decoder"), n_mels)
    with open(out_path, "wb") as out:
        write_ggml(out, hparams, mel_filters(n_mels=n_mels), vocabulary(words), named)
    print(f"ct2_to_ggml: wrote {out_path}: {len(named)} tensors, {n_vocab} tokens, "
          f"{hparams[4]}+{hparams[8]} layers", file=sys.stderr)


def self_test():
    """Round-trips a tiny synthetic model.bin through the reader and the tensor mapping."""
    import io
    import os
    import tempfile

    def put_string(buf, s):
        raw = s.encode() + b"\0"
        buf.write(struct.pack("<H", len(raw)) + raw)

    def put(buf, name, array):
        put_string(buf, name)
        array = np.asarray(array)
        buf.write(struct.pack("<B", array.ndim) + struct.pack(f"<{array.ndim}I", *array.shape))
        code = {np.dtype(np.float32): 0, np.dtype(np.int8): 1, np.dtype(np.int32): 3}[array.dtype]
        buf.write(struct.pack("<BI", code, array.nbytes) + array.tobytes())

    rng = np.random.default_rng(0)
    dim, vocab, mels = 4, 3, 80
    v = {
        "encoder/num_heads": np.array(1, dtype=np.int32),
        "decoder/num_heads": np.array(1, dtype=np.int32),
        "encoder/position_encodings/encodings": rng.random((6, dim), dtype=np.float32),
        "encoder/conv1/weight": rng.random((dim, mels, 3), dtype=np.float32),
        "encoder/conv1/bias": rng.random(dim, dtype=np.float32),
        "encoder/conv2/weight": rng.random((dim, dim, 3), dtype=np.float32),
        "encoder/conv2/bias": rng.random(dim, dtype=np.float32),
        "decoder/embeddings/weight": rng.random((vocab, dim), dtype=np.float32),
        "decoder/position_encodings/encodings": rng.random((5, dim), dtype=np.float32),
    }
    for norm in ("encoder/layer_norm", "decoder/layer_norm",
                 "encoder/layer_0/self_attention/layer_norm", "encoder/layer_0/ffn/layer_norm",
                 "decoder/layer_0/self_attention/layer_norm", "decoder/layer_0/attention/layer_norm",
                 "decoder/layer_0/ffn/layer_norm"):
        v[norm + "/gamma"] = rng.random(dim, dtype=np.float32)
        v[norm + "/beta"] = rng.random(dim, dtype=np.float32)
    for lin, rows in (("encoder/layer_0/self_attention/linear_0", 3 * dim),
                      ("encoder/layer_0/self_attention/linear_1", dim),
                      ("encoder/layer_0/ffn/linear_0", dim), ("encoder/layer_0/ffn/linear_1", dim),
                      ("decoder/layer_0/self_attention/linear_0", 3 * dim),
                      ("decoder/layer_0/self_attention/linear_1", dim),
                      ("decoder/layer_0/attention/linear_0", dim),
                      ("decoder/layer_0/attention/linear_1", 2 * dim),
                      ("decoder/layer_0/attention/linear_2", dim),
                      ("decoder/layer_0/ffn/linear_0", dim), ("decoder/layer_0/ffn/linear_1", dim)):
        v[lin + "/weight"] = rng.random((rows, dim), dtype=np.float32)
        bias = rng.random(rows, dtype=np.float32)
        if lin.endswith("self_attention/linear_0"):
            bias[dim:2 * dim] = 0  # no key bias
        if lin.endswith("attention/linear_1") and "self" not in lin:
            bias[:dim] = 0
        v[lin + "/bias"] = bias
    buf = io.BytesIO()
    buf.write(struct.pack("<I", 6))
    put_string(buf, "WhisperSpec")
    buf.write(struct.pack("<II", 1, len(v)))
    for name, array in v.items():
        put(buf, name, array)
    _, spec, read = Reader(buf.getvalue()).model()
    assert spec == "WhisperSpec", spec
    for name, array in v.items():
        assert np.array_equal(read[name], array), name
    named = tensors(read)
    q = named["encoder.blocks.0.attn.query.weight"]
    assert np.array_equal(q, v["encoder/layer_0/self_attention/linear_0/weight"][:dim])
    assert "encoder.blocks.0.attn.key.bias" not in named
    assert named["encoder.conv1.bias"].shape == (dim, 1)
    assert vocabulary(["a", "Ġb", "<|endoftext|>", "<|x|>"]) == [b"a", b" b"]
    # A truncated file and a quantized tensor are refused with a reason, not a traceback.
    for broken in (buf.getvalue()[:40],):
        try:
            Reader(broken).model()
        except SystemExit as e:
            assert "truncated" in str(e), e
        else:
            raise AssertionError("a truncated model.bin was accepted")
    read["decoder/embeddings/weight"] = read["decoder/embeddings/weight"].astype(np.int8)
    try:
        tensors(read)
    except SystemExit as e:
        assert "quantized" in str(e), e
    else:
        raise AssertionError("a quantized tensor was accepted")
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "model.bin"), "wb") as f:
            f.write(buf.getvalue())
        with open(os.path.join(tmp, "vocabulary.txt"), "w", encoding="utf-8") as f:
            f.write("a\nĠb\nc\n<|endoftext|>\n")
        out = os.path.join(tmp, "out.bin")
        convert(tmp, out)
        with open(out, "rb") as f:
            head = f.read(48)
        assert struct.unpack("<i", head[:4])[0] == GGML_MAGIC
        assert struct.unpack("<11i", head[4:48])[:3] == (vocab, 6, dim)
    print("ct2_to_ggml: self-test passed", file=sys.stderr)


if __name__ == "__main__":
    if sys.argv[1:] == ["--self-test"]:
        self_test()
    elif len(sys.argv) == 3:
        convert(sys.argv[1], sys.argv[2])
    else:
        fail("usage: ct2_to_ggml.py MODEL_DIR OUT.bin | --self-test")
