"""Train the bridge that carries USE multilingual vectors into the English encoder's space.

Why: the catalogue is embedded with the fine-tuned English encoder (minilm-narratives), which
knows the claims far better than USE does; an article in another language can only be read by
USE. The bridge is a small MLP (512 → hidden → 384, trained mostly on English text) that predicts
the English encoder's vector of a text from its USE vector. USE puts a text and its translations
close together, so a Russian passage, bridged, lands near where minilm-narratives would put the
English passage, and is searched against the same catalogue vectors as an English article: the
two languages get the same matches much more often than when USE embeds both sides
(docs/benchmarks.md, "Narrative matching across languages"), and no second copy of the catalogue
has to be embedded with USE.

Data: sentences of news articles (e.g. the PTC articles' texts, no labels used) and the titles and
summaries of EUvsDisinfo cases, embedded by both runtime encoders (USE and the shipped ONNX
encoder, so the targets are exactly the vectors the catalogue index holds). The last
``validation_share`` of the shuffled sentences are held out and give the reported cosine.

Translated pairs (``parallel``: English sentences we wrote with their Russian translations,
training/bridge_parallel_en_ru.tsv) are trained on as well, never held out: the translation's USE
vector, and the English sentence's own, each with the English sentence's English-encoder vector
as its target. Trained on English alone, the bridge
learns the map only where USE puts English text, and USE puts some Russian words elsewhere
(«Русофобия процветает» and "Russophobia is thriving" have a USE cosine of 0.39), names and
terms most of all; seeing translations, it learns where their vectors lie too.

Needs torch (the ``train`` extra); the bridge runs with numpy alone (``spinlens.embed.Bridge``).
"""

from __future__ import annotations

import csv
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spinlens.embed import (
    BRIDGE_FILE,
    BRIDGE_META,
    bridge_forward,
    load_encoder,
    load_multilingual_encoder,
)
from spinlens.errors import SpinlensError
from spinlens.sentences import split_sentences

MIN_WORDS = 4


@dataclass(frozen=True)
class BridgeConfig:
    seed: int = 13
    hidden: int = 2048
    # With the translated pairs, 80 (chosen as parallel_repeat was; 160 overfits them). Trained
    # on English alone, 160 was best.
    epochs: int = 80
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    validation_share: float = 0.05
    threads: int = 2
    # Each translation is seen this many times an epoch: they are few (1,252 against ~35k
    # sentences). Chosen with the 40 pairs of benchmarks/data/bridge_pairs_en_ru.tsv and the
    # article pairs of benchmarks/data/crosslingual_articles: 4 beat 0, 2 and 16 (which overfits).
    parallel_repeat: int = 4


def collect_sentences(articles: Sequence[Path], case_texts: Sequence[str]) -> list[str]:
    """Distinct sentences of at least MIN_WORDS words: every ``*.txt`` article under the
    ``articles`` folders, and the case texts (titles, summaries, disproofs) in ``case_texts``."""
    texts = list(case_texts)
    for folder in articles:
        if not folder.is_dir():
            raise SpinlensError(f"not a folder of articles: {folder}")
        texts.extend(p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.txt")))
    found: set[str] = set()
    for text in texts:
        for start, end in split_sentences(text):
            sentence = " ".join(text[start:end].split())
            if len(sentence.split()) >= MIN_WORDS:
                found.add(sentence)
    return sorted(found)


def train_bridge(
    sentences: Sequence[str],
    out_dir: Path,
    config: BridgeConfig = BridgeConfig(),
    encoder_dir: Path | None = None,
    log: Callable[[str], None] = print,
    pairs: Sequence[tuple[str, str]] = (),
    parallel: Sequence[tuple[str, str]] = (),
) -> dict[str, Any]:
    """Embed ``sentences`` with both encoders, fit the bridge, write it to ``out_dir``.

    ``pairs``: (English, translation) sentence pairs kept out of training; the mean cosine
    between the bridged translation and the English encoder's vector of the English sentence
    is reported (``pairs_cosine``): what the bridge is for, which English text cannot show.
    ``parallel``: (English, translation) pairs to train on (see the module's docstring)."""
    held_out = {english for english, _ in pairs} | {foreign for _, foreign in pairs}
    if any(english in held_out or foreign in held_out for english, foreign in parallel):
        raise SpinlensError("a translated pair to train on is also one to measure on")
    if len(sentences) < 100:
        raise SpinlensError(f"{len(sentences)} sentences are too few to train a bridge on")
    try:
        import torch
    except ImportError:
        raise SpinlensError("training needs torch: pip install torch==2.13.0") from None
    started = time.perf_counter()
    rng = random.Random(config.seed)
    order = list(sentences)
    rng.shuffle(order)
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)

    source_encoder = load_multilingual_encoder()
    target_encoder = load_encoder(encoder_dir)
    log(f"embedding {len(order):,} sentences with {source_encoder.name}")
    source = source_encoder.encode(order)
    log(f"embedding them with {target_encoder.name}")
    target = target_encoder.encode(order)

    n_valid = max(1, int(len(order) * config.validation_share))
    x_train, y_train = torch.from_numpy(source[:-n_valid]), torch.from_numpy(target[:-n_valid])
    trained_pairs = parallel if config.parallel_repeat else ()
    if trained_pairs:
        # Training rows only, never held out: each English original once (English text like the
        # rest) and its translation parallel_repeat times, both with the original's target.
        log(f"embedding {len(trained_pairs):,} translated pairs")
        originals = [e for e, _ in trained_pairs]
        inputs = source_encoder.encode(originals + [f for _, f in trained_pairs])
        english, foreign = np.split(inputs, [len(originals)])
        rows = np.concatenate([english, *[foreign] * config.parallel_repeat])
        targets = np.tile(target_encoder.encode(originals), (1 + config.parallel_repeat, 1))
        x_train = torch.cat([x_train, torch.from_numpy(rows)])
        y_train = torch.cat([y_train, torch.from_numpy(targets)])
    x_valid, y_valid = torch.from_numpy(source[-n_valid:]), torch.from_numpy(target[-n_valid:])
    net = torch.nn.Sequential(
        torch.nn.Linear(source.shape[1], config.hidden),
        # The tanh form, so numpy computes exactly the same function at run time.
        torch.nn.GELU(approximate="tanh"),
        torch.nn.Linear(config.hidden, target.shape[1]),
    )
    optimiser = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, config.epochs)

    def cosine(x: Any, y: Any) -> Any:
        return (torch.nn.functional.normalize(net(x), dim=1) * y).sum(dim=1)

    history = []
    for epoch in range(1, config.epochs + 1):
        net.train()
        for batch in torch.randperm(len(x_train)).split(config.batch_size):
            loss = (1 - cosine(x_train[batch], y_train[batch])).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        schedule.step()
        net.eval()
        with torch.no_grad():
            valid = float(cosine(x_valid, y_valid).mean())
        history.append({"epoch": epoch, "validation_cosine": round(valid, 4)})
        if epoch % 10 == 0 or epoch == config.epochs:
            log(f"epoch {epoch}: held-out cosine to the English encoder {valid:.4f}")

    weights = {
        "w1": net[0].weight.detach().numpy().T,
        "b1": net[0].bias.detach().numpy(),
        "w2": net[2].weight.detach().numpy().T,
        "b2": net[2].bias.detach().numpy(),
    }
    # float16 halves the file; checked below against the float32 network.
    stored = {name: value.astype(np.float16) for name, value in weights.items()}
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez(out_dir / BRIDGE_FILE, **stored)
    layers = [stored[n] for n in ("w1", "b1", "w2", "b2")]  # as spinlens.embed.Bridge runs them
    bridged = bridge_forward(layers, source[-n_valid:])
    with torch.no_grad():
        exact = torch.nn.functional.normalize(net(x_valid), dim=1).numpy()
    agreement = float(np.mean(np.sum(bridged * exact, axis=1)))
    if agreement < 0.999:
        raise SpinlensError(f"the float16 bridge drifts from the trained one (cosine {agreement})")
    pairs_cosine = None
    if pairs:
        english = target_encoder.encode([e for e, _ in pairs])
        foreign = bridge_forward(layers, source_encoder.encode([f for _, f in pairs]))
        pairs_cosine = round(float(np.mean(np.sum(english * foreign, axis=1))), 4)
        log(f"{len(pairs)} translated pairs: cosine to the English encoder {pairs_cosine:.4f}")
    meta = {
        "source_encoder": source_encoder.name,
        "target_encoder": target_encoder.name,
        "config": asdict(config),
        "sentences": {"train": len(order) - n_valid, "validation": n_valid},
        "parallel": len(trained_pairs),
        "validation_cosine": history[-1]["validation_cosine"],
        "pairs": len(pairs),
        "pairs_cosine": pairs_cosine,
        "float16_agreement": round(agreement, 5),
        "history": history,
        "minutes": round((time.perf_counter() - started) / 60, 1),
    }
    (out_dir / BRIDGE_META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta


def read_pairs(path: Path) -> list[tuple[str, str]]:
    """Translated sentence pairs from a tab-separated file with a header: the ``english``
    column and a column of translations (the first other than ``english`` and ``kind``)."""
    try:
        with path.open(encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
    except OSError as error:
        raise SpinlensError(f"cannot read pairs {path}: {error.strerror}") from None
    others = [name for name in (rows[0] if rows else ()) if name not in ("english", "kind")]
    if not rows or "english" not in rows[0] or not others:
        raise SpinlensError(f"{path}: needs a header with an 'english' column and a translation")
    other = others[0]
    return [(row["english"], row[other]) for row in rows if row["english"] and row[other]]
