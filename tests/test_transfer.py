"""The C-MET connector against the checkpoint layout and the golden reference outputs."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from cmet_cli.checkpoint import read_checkpoint
from cmet_cli.transfer import Connector, ConnectorConfig

CKPT_NAME = "_epoch_2105_checkpoint_step000200000.pth"


def _close(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """max|Δ|, asserted within 1e-4 relative to max(1, max|expected|).

    The connector is shallow (2 transformer layers over 10-d codes): measured on 2-core Intel Xeon with 1
    and 2 threads, forward and rollout land <= 2.4e-6 from the golden values; the reference run on the
    AMD EPYC that made the golden file matched them exactly. The bound (4.9e-4 for the rollout, 200x the spread) guards against wiring errors
    (a wrong window, a dropped residual), which move outputs by O(0.1).
    """
    delta = (actual - expected).abs().max().item()
    assert delta <= 1e-4 * max(1.0, expected.abs().max().item()), delta
    return delta


@pytest.fixture(scope="module")
def golden(golden_dir: Path, seeded) -> dict:
    """Paths and reference arrays of the connector case."""
    manifest = golden_dir / "cmet_connector.json"
    npz = golden_dir / "cmet_connector.npz"
    return {"manifest": manifest, "npz": npz, "arrays": seeded.golden_arrays("cmet_connector")}


@pytest.fixture(scope="module")
def model(golden: dict, seeded, tmp_path_factory) -> Connector:
    """A connector loaded through the official checkpoint file format."""
    path = tmp_path_factory.mktemp("ckpt") / CKPT_NAME
    torch.save({"state_dict": seeded.golden_state_dict("cmet_connector"),
                "global_step": 200000, "global_epoch": 2105}, path)
    net = Connector()
    net.load_state_dict(read_checkpoint(path, "state_dict"), strict=True)
    return net.eval()


@pytest.fixture(scope="module")
def clip(golden: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """(neutral (20,10), e2v (1024,)) of the rollout case."""
    arrays = golden["arrays"]
    return arrays["rollout/neutral"][0], arrays["rollout/e2v"][0, 0]


def test_state_dict_matches_manifest(golden: dict) -> None:
    manifest = json.loads(golden["manifest"].read_text())
    state = Connector(ConnectorConfig()).state_dict()
    assert len(state) == len(manifest) == 243
    assert list(state) == list(manifest)
    for key, entry in manifest.items():
        assert list(state[key].shape) == entry["shape"], key


def _float64_table(length: int, dim: int) -> torch.Tensor:
    """The sinusoidal position table of the reference formula, computed in float64."""
    pos = torch.arange(length, dtype=torch.float64)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float64) * (-math.log(10000.0) / dim))
    table = torch.empty(length, dim, dtype=torch.float64)
    table[:, 0::2], table[:, 1::2] = torch.sin(pos * freq), torch.cos(pos * freq)
    return table


def test_position_tables_match_reference(golden: dict) -> None:
    """Ours and the stored reference tables both equal the float64 formula within float32 rounding.

    The float32 tables differ between CPUs (libm's sin/cos/exp of large arguments), so they are not
    compared with each other bit for bit. The angle pos * freq (pos < 512) carries a float32 error of a few
    ulp of pos * freq, i.e. <= 4 * (length - 1) * 2**-24 = 1.2e-4; measured 3.4e-5 for both tables on
    Intel Xeon. A wrong formula (base, sin/cos order, dim scaling) is off by O(1).
    """
    import numpy as np

    state = Connector().state_dict()
    with np.load(golden["npz"]) as z:
        for name in ("position_r", "position_e"):
            key = f"fusion_transformer_encoder.{name}.pe"
            ours, stored = state[key][0].double(), torch.from_numpy(z[f"buffer/{key}"])[0].double()
            length, dim = ours.shape
            exact, tol = _float64_table(length, dim), 4 * (length - 1) * 2.0**-24
            assert (ours - exact).abs().max().item() <= tol, name
            assert (stored - exact).abs().max().item() <= tol, name


def test_forward_matches_golden(model: Connector, golden: dict, threads) -> None:
    a = golden["arrays"]
    with torch.no_grad():
        out = model(a["forward/ref"], a["forward/e2v"], a["forward/neutral"])
    assert out.shape == (10, 10)
    _close(out, a["forward/out"])


def test_rollout_matches_golden(model: Connector, golden: dict, clip, threads) -> None:
    neutral, e2v = clip
    edited = model.rollout(neutral, e2v)
    assert edited.shape == (20, 10)
    _close(edited, golden["arrays"]["rollout/edited"])


def test_directions_are_the_reference_change(model: Connector, golden: dict, clip) -> None:
    """The predicted directions are what the reference implementation added to the codes (its edited codes minus
    the neutral ones), not only whatever ``rollout`` adds."""
    neutral, e2v = clip
    _close(model.directions(neutral, e2v), golden["arrays"]["rollout/edited"] - neutral)


@pytest.mark.parametrize("n", [1, 3, 7, 23])
def test_any_length(model: Connector, clip, n: int) -> None:
    neutral, e2v = clip
    codes = torch.cat((neutral, neutral.flip(0)))[:n]
    edited = model.rollout(codes, e2v)
    assert edited.shape == (n, 10)
    assert torch.isfinite(edited).all()
    full = n - n % 5
    if full:  # whole windows do not depend on what follows
        assert torch.equal(edited[:full], model.rollout(codes[:full], e2v))
    if n % 5:  # the partial window equals an explicitly padded one
        pad = torch.cat((codes, codes[-1:].expand(5 - n % 5, -1)))
        assert torch.equal(edited, model.rollout(pad, e2v)[:n])


def test_first_window_is_forward_with_zero_reference(model: Connector, clip) -> None:
    neutral, e2v = clip
    with torch.no_grad():
        first = model(torch.zeros(1, 5, 10), e2v.view(1, 1, -1), neutral[:5].unsqueeze(0))
    _close(model.directions(neutral[:5], e2v), first)


def test_streaming_equals_one_call(model: Connector, clip) -> None:
    neutral, e2v = clip
    whole, whole_last = model.rollout(neutral, e2v, return_last=True)
    parts, last = [], None
    for start in range(0, 20, 10):
        part, last = model.rollout(neutral[start:start + 10], e2v, prev_direction=last, return_last=True)
        parts.append(part)
    assert torch.equal(torch.cat(parts), whole)
    assert torch.equal(last, whole_last)
    assert last.shape == (5, 10)


def test_per_window_e2v(model: Connector, clip) -> None:
    neutral, e2v = clip
    shared = model.rollout(neutral, e2v)
    assert torch.equal(model.rollout(neutral, e2v.expand(4, -1).clone()), shared)
    other = model.rollout(neutral, torch.stack([e2v, e2v, -e2v, e2v]))
    assert torch.equal(other[:10], shared[:10])
    assert not torch.equal(other[10:15], shared[10:15])
    with pytest.raises(ValueError):
        model.rollout(neutral, e2v.expand(3, -1))


def test_bad_shapes_raise(model: Connector, clip) -> None:
    neutral, e2v = clip
    with pytest.raises(ValueError):
        model.rollout(neutral[:0], e2v)
    with pytest.raises(ValueError):
        model.rollout(neutral, e2v, prev_direction=torch.zeros(4, 10))


def test_autocast_cpu_bf16(model: Connector, golden: dict, clip) -> None:
    neutral, e2v = clip
    with torch.autocast("cpu", dtype=torch.bfloat16):
        edited = model.rollout(neutral, e2v)
    assert edited.dtype == neutral.dtype and edited.shape == (20, 10)
    assert torch.isfinite(edited).all()
    # measured max|Δ| 0.038 from the fp32 golden (2-core Intel Xeon); bound 0.1 (2.6x). Directions reach 3.0, so
    # every direction scaled by 0.95 lands 0.15 away and fails, as does any wiring error (O(1)).
    assert (edited - golden["arrays"]["rollout/edited"]).abs().max().item() < 0.1
