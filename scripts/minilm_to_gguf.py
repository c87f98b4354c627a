#!/usr/bin/env python3
"""Convert a sentence-transformers BERT model (Hugging Face files: config.json, modules.json,
tokenizer.json, model.safetensors) to a GGUF file that llama.cpp loads as an embedding model.

Usage: minilm_to_gguf.py HF_DIR OUT.gguf [f16|f32] [NAME]

Needs only numpy and gguf (PyPI), no torch: the safetensors file is read by hand. It follows
llama.cpp's convert_hf_to_gguf.py BertModel path. The position and token-type embeddings stay
f32 even in an f16 file: llama.cpp adds them to f32 activations and aborts on f16 there.
"""

import json
import struct
import sys
from pathlib import Path

import gguf
import numpy as np

SKIPPED = ("embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias")
KEEP_F32 = ("position_embd.weight", "token_types.weight")


def fail(msg):
    raise SystemExit(f"minilm_to_gguf: {msg}")


def load_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        fail(f"cannot read {path}: {e}")


def pooling(src):
    for module in load_json(src / "modules.json"):
        if module["type"] == "sentence_transformers.models.Pooling":
            cfg = load_json(src / module["path"] / "config.json")
            if cfg.get("pooling_mode_mean_tokens"):
                return gguf.PoolingType.MEAN
            if cfg.get("pooling_mode_cls_token"):
                return gguf.PoolingType.CLS
            fail(f"unsupported pooling {cfg}")
    return None


def add_vocab(writer, src, hp):
    tj = load_json(src / "tokenizer.json")
    if tj["model"]["type"] != "WordPiece":
        fail(f"expected a WordPiece tokenizer, found {tj['model']['type']}")
    by_id = {i: t for t, i in tj["model"]["vocab"].items()}
    special = {a["id"] for a in tj["added_tokens"] if a["special"]}
    tokens, types = [], []
    for i in range(hp["vocab_size"]):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in special:
            tokens.append(by_id[i])
            types.append(gguf.TokenType.CONTROL)
        else:
            # llama.cpp's WPM tokenizer marks word starts with U+2581 instead of "##" on
            # continuations.
            t = by_id[i]
            tokens.append(t[2:] if t.startswith("##") else "\u2581" + t)
            types.append(gguf.TokenType.NORMAL)
    writer.add_token_type_count(hp.get("type_vocab_size", 1))
    writer.add_tokenizer_model("bert")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    gguf.SpecialVocab(src, load_merges=False, n_vocab=len(tokens)).add_to_gguf(writer)


def add_tensors(writer, src, n_layer, outtype):
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, n_layer)
    dtypes = {"F32": np.float32, "F16": np.float16}
    path = src / "model.safetensors"
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
        base = 8 + header_len
        for name, meta in header.items():
            if name == "__metadata__":
                continue
            hf = name[5:] if name.startswith("bert.") else name
            if hf in SKIPPED or hf.startswith("cls."):
                continue
            new = names.get_name(hf, try_suffixes=(".weight", ".bias"))
            if new is None:
                fail(f"cannot map tensor {name} of {path}")
            if meta["dtype"] not in dtypes:
                fail(f"tensor {name} has unsupported dtype {meta['dtype']}")
            start, end = meta["data_offsets"]
            f.seek(base + start)
            raw = f.read(end - start)
            if len(raw) != end - start:
                fail(f"{path} is truncated inside tensor {name}")
            arr = np.frombuffer(raw, dtype=dtypes[meta["dtype"]]).reshape(meta["shape"])
            arr = arr.astype(np.float32)
            if outtype == "f16" and arr.ndim == 2 and new not in KEEP_F32:
                arr = arr.astype(np.float16)
            writer.add_tensor(new, arr)


def main():
    if len(sys.argv) < 3:
        fail(__doc__)
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    outtype = sys.argv[3] if len(sys.argv) > 3 else "f16"
    if outtype not in ("f16", "f32"):
        fail(f"output type must be f16 or f32, not {outtype}")
    hp = load_json(src / "config.json")
    if hp.get("architectures", [None])[0] != "BertModel":
        fail(f"{src} is not a BertModel: {hp.get('architectures')}")
    n_layer = hp["num_hidden_layers"]
    writer = gguf.GGUFWriter(out, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.BERT])
    writer.add_name(sys.argv[4] if len(sys.argv) > 4 else src.name)
    writer.add_block_count(n_layer)
    writer.add_context_length(hp["max_position_embeddings"])
    writer.add_embedding_length(hp["hidden_size"])
    writer.add_feed_forward_length(hp["intermediate_size"])
    writer.add_head_count(hp["num_attention_heads"])
    writer.add_layer_norm_eps(hp["layer_norm_eps"])
    writer.add_causal_attention(False)
    writer.add_file_type(
        gguf.LlamaFileType.MOSTLY_F16 if outtype == "f16" else gguf.LlamaFileType.ALL_F32
    )
    pool = pooling(src)
    if pool is not None:
        writer.add_pooling_type(pool)
    add_vocab(writer, src, hp)
    add_tensors(writer, src, n_layer, outtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    print(f"minilm_to_gguf: wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
