"""tools/golden/golden.py (regenerates the golden files with the reference implementations): the parts that need
no reference checkout: which stored arrays each case reads and writes, the comparison, and the connector case's
whole path (config, seeded weights, C-MET's rollout loop, --check, --out) run with a stand-in C-MET checkout whose
``Connector_exp`` is cmet's own connector."""
from __future__ import annotations

import importlib.util
import re
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Iterator

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tool() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("golden_tool", ROOT / "tools" / "golden" / "golden.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses resolve their annotations through it
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[spec.name]


@pytest.mark.parametrize("key", ["edtalk", "connector", "emotion2vec"])
def test_each_case_reads_its_inputs_and_rewrites_every_other_array(tool, golden_dir: Path, key: str) -> None:
    """Inputs, outputs and buffers of a case are exactly the committed file's arrays: a regenerated file leaves
    nothing stale."""
    case = tool.CASES[key]
    stored = tool.read_golden(golden_dir / f"{case.name}.npz")
    inputs = tool.case_inputs(case, stored)
    assert list(inputs) == list(case.inputs)
    assert all(np.array_equal(inputs[n], stored[n]) for n in inputs)
    buffer_names = {tool.BUFFER + k for k in tool.buffers(stored)}
    assert set(case.inputs) | set(case.outputs) | buffer_names == set(stored)
    assert not set(case.outputs) & buffer_names


def test_a_missing_input_is_an_error_naming_it(tool) -> None:
    with pytest.raises(SystemExit, match="error: cmet_connector.npz lacks the input array.s. forward/e2v"):
        tool.case_inputs(tool.CASES["connector"], {"forward/ref": np.zeros(1)})


def test_compare_reports_max_abs_difference_per_array(tool, golden_dir: Path) -> None:
    stored = tool.read_golden(golden_dir / "cmet_connector.npz")
    new = {"forward/out": stored["forward/out"].copy(), "rollout/edited": stored["rollout/edited"][:10],
           "extra": np.zeros(3, np.float32)}
    new["forward/out"][3, 7] -= 0.25
    deltas = {d.name: d for d in tool.compare(new, stored)}
    assert deltas["forward/out"].max_abs == pytest.approx(0.25, abs=1e-6)
    assert deltas["rollout/edited"].max_abs is None and "shape differs" in deltas["rollout/edited"].note
    assert deltas["extra"].max_abs is None and "not in the committed file" in deltas["extra"].note
    assert tool.compare({"forward/out": stored["forward/out"]}, stored)[0].max_abs == 0.0


def test_model_conf_nests_the_recorded_funasr_config(tool, golden_dir: Path) -> None:
    import json

    config = json.loads((golden_dir / "emotion2vec_plus_large.config.json").read_text())
    conf = tool.model_conf(config)
    assert conf["embed_dim"] == 1024 and conf["depth"] == 8 and conf["num_heads"] == 16
    assert conf["modalities"]["audio"]["prenet_depth"] == 16
    assert conf["modalities"]["audio"]["num_extra_tokens"] == 10
    assert conf["modalities"]["audio"]["decoder"] is None
    assert not {"derived", "std", "note", "funasr_version", "manifest_keys"} & set(conf)


def _standin_cmet_checkout(root: Path, scale: float = 1.0) -> Path:
    """A folder laid out like a C-MET checkout: configs/inference.yaml with C-MET's connector settings and a
    src/connector.py whose Connector_exp is cmet's connector (same state-dict keys), returning (directions, None)
    like the reference, its directions multiplied by ``scale``."""
    (root / "src").mkdir(parents=True)
    (root / "configs").mkdir()
    (root / "configs" / "inference.yaml").write_text(textwrap.dedent("""\
        projector_kwargs:
          path:
          exp: {mm_projector_type: mlp2x_gelu, mm_hidden_size: 1024, hidden_size: 10}
          speaker: {mm_projector_type: mlp2x_gelu, mm_hidden_size: 1024, hidden_size: 1024}
        transformer_kwargs: {T: 5, hidden_size: 1024, nlayer: 4, nhead: 4, dim_feedforward: 1024, dropout: 0.1}
        """))
    (root / "src" / "connector.py").write_text(textwrap.dedent(f"""\
        from cmet_cli.transfer import Connector


        class Connector_exp(Connector):
            def __init__(self, projector_kwargs, transformer_kwargs, device="cuda"):
                assert transformer_kwargs["T"] == 5 and transformer_kwargs["nlayer"] == 4
                super().__init__()

            def forward(self, ref, e2v, neutral):
                return super().forward(ref, e2v, neutral) * {scale!r}, None
        """))
    return root


def _deltas(text: str) -> dict[str, float]:
    return {m[1]: float(m[2]) for m in re.finditer(r"^(\S+)\s+\([^)]*\)\s+max\|Δ\| (\S+)", text, re.M)}


# Tolerance: through the tool, cmet's connector lands 1.7e-6 (1 thread) / 2.2e-6 (2 threads) from the golden
# forward/out and 2.4e-6 from rollout/edited on a 2-core Intel Xeon (test_transfer.py measured the same 2.4e-6).
# 5e-4 (= 1e-4 * max|ref| 4.86 of the rollout, the bound test_transfer.py uses) is 200x that and still fails
# directions 5 % too strong, which move the outputs by 0.15 and 0.16 (measured; asserted >= 1e-2 below).
TOL = 5e-4


def test_connector_case_checks_and_writes_through_a_checkout(tool, golden_dir: Path, tmp_path: Path, capsys) -> None:
    checkout = _standin_cmet_checkout(tmp_path / "C-MET")
    args = ["--case", "connector", "--cmet-repo", str(checkout), "--threads", "1"]
    assert tool.run(tool.parse_args(args + ["--check", "--tol", str(TOL)])) == 0
    deltas = _deltas(capsys.readouterr().out)
    assert set(deltas) == {"forward/out", "rollout/edited", "buffer/fusion_transformer_encoder.position_r.pe",
                           "buffer/fusion_transformer_encoder.position_e.pe"}
    assert deltas["forward/out"] <= TOL and deltas["rollout/edited"] <= TOL
    # cmet's own position tables against the stored ones, both float32 sin/cos of one formula: measured 3.05e-5;
    # test_transfer.py bounds each by 1.2e-4 from the float64 table, hence 2.4e-4 between the two
    assert deltas["buffer/fusion_transformer_encoder.position_r.pe"] <= 2.4e-4

    assert tool.run(tool.parse_args(args + ["--out", str(tmp_path / "out")])) == 0
    stored = tool.read_golden(golden_dir / "cmet_connector.npz")
    written = tool.read_golden(tmp_path / "out" / "cmet_connector.npz")
    assert list(written) == list(stored)
    for name in stored:
        if name in tool.CASES["connector"].outputs:
            assert np.abs(written[name] - stored[name]).max() <= TOL, name
        else:
            assert np.array_equal(written[name], stored[name]), name
    with pytest.raises(SystemExit, match="exists: pass --overwrite"):
        tool.run(tool.parse_args(args + ["--out", str(tmp_path / "out")]))
    with pytest.raises(SystemExit, match="is the file the inputs are read from"):
        tool.run(tool.parse_args(args + ["--out", str(golden_dir), "--overwrite"]))


def test_connector_check_fails_directions_five_percent_strong(tool, tmp_path: Path, capsys) -> None:
    checkout = _standin_cmet_checkout(tmp_path / "C-MET", scale=1.05)
    args = ["--case", "connector", "--cmet-repo", str(checkout), "--threads", "1", "--check", "--tol", str(TOL)]
    assert tool.run(tool.parse_args(args)) == 1
    deltas = _deltas(capsys.readouterr().out)
    assert deltas["forward/out"] >= 1e-2 and deltas["rollout/edited"] >= 1e-2
