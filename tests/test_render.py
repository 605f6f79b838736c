"""cmet_cli.render: checkpoint layout, golden numbers, cost per frame, caching, small configurations."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from cmet_cli.checkpoint import read_checkpoint
from cmet_cli.render import AppearanceSource, Codes, EDTalkGenerator, GeneratorConfig, generator_config

CASE = "edtalk_generator"
MANIFEST = f"{CASE}.json"
SMALL = GeneratorConfig(size=64)


def _assert_close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    """Shallow outputs (the encoder's codes, comparisons on one machine): max|Δ| <= 1e-4 * max(1, max|ref|).

    Measured on 2-core Intel Xeon, 1 and 2 threads: the codes land <= 7.2e-7 from the golden values
    (scale ~1), 140x inside this bound; the reference run on AMD EPYC matched them exactly.
    """
    assert actual.shape == expected.shape
    tol = 1e-4 * max(1.0, expected.abs().max().item())
    err = (actual - expected).abs().max().item()
    assert err <= tol, f"max|Δ| {err:.3g} > {tol:.3g}"


# The decoder image is the output of a 17-layer stack whose flow fields magnify fp32 rounding: its value
# depends on the CPU's kernels and the thread count. The reference implementation itself lands
# max|Δ| 7.75e-3, mean|Δ| 1.39e-5 from the golden image on a 2-core Intel Xeon (1 and 2 threads alike;
# scale max|ref| = 8.9), while it reproduced it exactly on the AMD EPYC that made the golden file.
# The error is a few pixels where the flow samples near an edge, hence two bounds:
#   max|Δ|  <= 2e-3 * scale = 1.8e-2: 2.3x the measured spread; catches any local break larger than that;
#   mean|Δ| <= 3e-5 * scale = 2.7e-4: 19x the measured spread; catches small global errors, e.g. one
#           element of the last to-RGB conv scaled by 1.1 gives mean|Δ| 7.1e-4 (test_golden_check_bites).
IMAGE_MAX, IMAGE_MEAN = 2e-3, 3e-5


def image_error(actual: torch.Tensor, expected: torch.Tensor) -> str | None:
    """Why ``actual`` is not the golden image within the cross-machine tolerance (None if it is)."""
    if actual.shape != expected.shape:
        return f"shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    scale = max(1.0, expected.abs().max().item())
    delta = (actual - expected).abs()
    worst, mean = delta.max().item(), delta.mean().item()
    if worst > IMAGE_MAX * scale:
        return f"max|Δ| {worst:.3g} > {IMAGE_MAX * scale:.3g}"
    if mean > IMAGE_MEAN * scale:
        return f"mean|Δ| {mean:.3g} > {IMAGE_MEAN * scale:.3g}"
    return None


@pytest.fixture(scope="module")
def golden(golden_dir, seeded) -> dict[str, torch.Tensor]:
    return seeded.golden_arrays(CASE)


@pytest.fixture(scope="module")
def golden_model(golden_dir, seeded, tmp_path_factory) -> EDTalkGenerator:
    """The full-size generator with the stand-in weights, loaded through a checkpoint file like EDTalk.pt."""
    path = tmp_path_factory.mktemp("weights") / "EDTalk.pt"
    torch.save({"gen": seeded.golden_state_dict(CASE), "other": {}}, path)
    model = EDTalkGenerator().eval()
    model.load_state_dict(read_checkpoint(path, "gen"), strict=True)
    return model


@pytest.fixture(scope="module")
def small_model() -> EDTalkGenerator:
    """A size-64 generator with random weights, its flow heads scaled down.

    With unit-variance flow weights the flow logits are so large that the decoder multiplies
    float32 rounding differences (which depend on the batch size) by ~1000; tamer flows keep
    comparisons between batch sizes meaningful.
    """
    torch.manual_seed(0)
    model = EDTalkGenerator(SMALL).eval()
    with torch.no_grad():
        for to_flow in model.dec.to_flows:
            to_flow.conv.weight.mul_(0.1)
    return model


def _frames(n: int, size: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_state_dict_matches_manifest(golden_dir) -> None:
    manifest = json.loads((golden_dir / MANIFEST).read_text())
    with torch.device("meta"):
        state = EDTalkGenerator().state_dict()
    assert len(state) == len(manifest) == 298
    assert {k: list(v.shape) for k, v in state.items()} == {k: v["shape"] for k, v in manifest.items()}


@torch.no_grad()
def test_golden_codes_and_image(golden_model, golden, threads) -> None:
    codes = golden_model.encode(golden["frames"])
    for name in ("exp", "pose", "lip"):
        _assert_close(getattr(codes, name), golden[f"codes/{name}"])
    image = golden_model.render(golden["render/source"], golden["codes/lip"], golden["codes/pose"], golden["render/exp"])
    assert image_error(image, golden["render/image"]) is None


@torch.no_grad()
def test_channels_last_codes_match_the_golden_ones(golden_model, golden) -> None:
    """Channels-last memory (CUDA's layout, and the CPU's under bf16) computes the same codes. Its fp32 image is
    not held to the golden bound on the CPU (max|Δ| 2.45e-3·s against 2e-3·s), which is why fp32 on the CPU
    stays contiguous (``runtime.prefers_channels_last``)."""
    import copy

    from cmet_cli.runtime import to_channels_last

    model = to_channels_last(copy.deepcopy(golden_model))
    assert model.enc.net_app.convs[0][0].weight.is_contiguous(memory_format=torch.channels_last)
    codes = model.encode(golden["frames"].contiguous(memory_format=torch.channels_last))
    for name in ("exp", "pose", "lip"):
        _assert_close(getattr(codes, name), golden[f"codes/{name}"])


def _scale_first_element(tensor: torch.Tensor, factor: float) -> None:
    tensor.view(-1)[0] *= factor


@pytest.mark.parametrize("break_", ["one to-RGB weight x1.1", "expression codes of the two frames swapped"])
@torch.no_grad()
def test_golden_check_bites(golden_model, golden, break_: str) -> None:
    """The cross-machine tolerance still fails a real, small break of the decoder or its wiring."""
    exp = golden["render/exp"]
    weight = golden_model.dec.to_rgbs[-1].conv[0].weight
    saved = weight.clone()
    try:
        if break_.startswith("one to-RGB"):
            _scale_first_element(weight, 1.1)
        else:
            exp = exp.flip(0)
        image = golden_model.render(golden["render/source"], golden["codes/lip"], golden["codes/pose"], exp)
    finally:
        weight.copy_(saved)
    assert image_error(image, golden["render/image"]) is not None


@torch.no_grad()
def test_flops_per_frame(golden_model, golden) -> None:
    source = golden_model.encode_source(golden["render/source"][:1])
    with FlopCounterMode(display=False) as encoder:
        codes = golden_model.encode(golden["frames"][:1])
    with FlopCounterMode(display=False) as decoder:
        golden_model.render(source, codes.lip, codes.pose, codes.exp)
    enc, dec = encoder.get_total_flops(), decoder.get_total_flops()
    assert enc + dec <= 85e9
    assert enc == pytest.approx(31.2e9, rel=0.02)
    # reference decoder 71.8 GFLOP, of which each EEM conv costs 20.8: the dead conv1 is skipped, conv2 moved to the source
    assert dec == pytest.approx(30.1e9, rel=0.02)


@torch.no_grad()
def test_qr_once_per_weights(monkeypatch) -> None:
    calls = []
    qr = torch.linalg.qr
    monkeypatch.setattr(torch.linalg, "qr", lambda *a, **k: calls.append(1) or qr(*a, **k))
    torch.manual_seed(2)
    model = EDTalkGenerator(GeneratorConfig(size=32)).eval()
    source = model.encode_source(_frames(1, 32))
    codes = model.encode(_frames(2, 32))
    first = model.render(source, codes.lip, codes.pose, codes.exp)
    assert torch.equal(model.render(source, codes.lip, codes.pose, codes.exp), first)
    assert len(calls) == 1

    state = model.state_dict()
    model.load_state_dict(state | {"direction_exp.weight": torch.randn_like(state["direction_exp.weight"])})
    changed = model.render(source, codes.lip, codes.pose, codes.exp)
    assert len(calls) == 2
    assert not torch.allclose(changed, first)


@torch.no_grad()
def test_cached_source_broadcasts(small_model) -> None:
    frame = _frames(1, SMALL.size, seed=3)
    codes = small_model.encode(_frames(2, SMALL.size, seed=4))
    source = small_model.encode_source(frame)
    batched = small_model.render(source, codes.lip, codes.pose, codes.exp)
    _assert_close(batched, small_model.render(frame.repeat(2, 1, 1, 1), codes.lip, codes.pose, codes.exp))
    for i in range(2):
        _assert_close(batched[i : i + 1], small_model.render(source, codes.lip[i : i + 1], codes.pose[i : i + 1], codes.exp[i : i + 1]))
    bare = AppearanceSource(wa=source.wa, feats=source.feats)  # built by hand: the EEM part is computed on use
    _assert_close(small_model.render(bare, codes.lip, codes.pose, codes.exp), batched)
    with pytest.raises(ValueError, match="source batch"):
        small_model.render(_frames(3, SMALL.size), codes.lip, codes.pose, codes.exp)


@torch.no_grad()
def test_small_config_shapes(small_model) -> None:
    frames = _frames(2, SMALL.size)
    codes = small_model.encode(frames)
    assert isinstance(codes, Codes)
    assert (codes.exp.shape, codes.pose.shape, codes.lip.shape) == ((2, 10), (2, 6), (2, 20))
    source = small_model.encode_source(frames)
    assert source.wa.shape == (2, 512)
    assert [tuple(f.shape[1:]) for f in source.feats] == [(512, 8, 8), (512, 16, 16), (512, 32, 32), (256, 64, 64)]
    image = small_model.render(source, codes.lip, codes.pose, codes.exp)
    assert image.shape == (2, 3, 64, 64) and torch.isfinite(image).all()


@torch.no_grad()
def test_cpu_autocast(small_model) -> None:
    frames = _frames(2, SMALL.size)
    reference = small_model.encode(frames)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        codes = small_model.encode(frames)
        image = small_model.render(frames[:1], codes.lip, codes.pose, codes.exp)
    assert codes.exp.dtype == image.dtype == torch.float32
    assert torch.allclose(codes.exp, reference.exp, atol=0.05 * reference.exp.abs().max().item())
    assert image.shape == (2, 3, 64, 64) and torch.isfinite(image).all()


def test_config_rejects_bad_size() -> None:
    with pytest.raises(ValueError, match="power of two"):
        GeneratorConfig(size=96)


# CUDA against the CPU result of the same run, in the three ways a GPU computes: fp32 with TF32 off, with TF32
# on (cuDNN's default for convolutions), and under bf16 autocast (cmet's default on CUDA), with the generator in
# channels-last memory as cmet runs it there. NOT YET MEASURED ON A GPU: no GPU was lent to the task that wrote
# these (2026-12-04). The one figure known: the old bound max|Δ| <= 1e-3·s against the golden image failed on an
# H200 (fp32, TF32 off), where CPU-to-CPU spread is already 0.87e-3·s. So for fp32 with TF32 off:
#   mean|Δ| <= IMAGE_MEAN·s (3e-5·s), the cross-CPU bound: it is what catches small global breaks (one to-RGB
#           weight x1.1 moves the mean by 8e-5·s, test_cuda_check_bites);
#   max|Δ|  <= CUDA_IMAGE_MAX·s (1e-2·s), 5x the cross-CPU bound: the few pixels where the flow samples near an
#           edge move most with the kernels' rounding, and cuDNN picks other kernels than oneDNN.
# TF32 and bf16 round inputs to 10 and 7 mantissa bits, which the stand-in weights amplify in the decoder
# (bf16 moves their images by up to 3.6): for them the codes are checked (within 5 % of their scale, as the CPU
# autocast test) and the image spread is recorded, not bounded. `benchmarks/gpu_check.sh` collects every spread
# (CMET_GPU_SPREAD) so that the bounds can be set from measurement.
CUDA_IMAGE_MAX = 1e-2
CUDA_MODES = {"fp32": (False, None), "tf32": (True, None), "bf16": (False, torch.bfloat16)}


def _cuda_or_skip() -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")


def _spread(actual: torch.Tensor, expected: torch.Tensor) -> dict[str, float]:
    scale = max(1.0, expected.abs().max().item())
    delta = (actual.float().cpu() - expected).abs()
    return {"max": delta.max().item() / scale, "mean": delta.mean().item() / scale}


def _record(test: str, **spread: dict[str, float]) -> None:
    """Append a measured spread to the file ``CMET_GPU_SPREAD`` names (``benchmarks/gpu_check.sh`` sets it)."""
    import os

    if os.environ.get("CMET_GPU_SPREAD"):
        with open(os.environ["CMET_GPU_SPREAD"], "a") as log:
            log.write(json.dumps({"test": test, "device": torch.cuda.get_device_name(), **spread}) + "\n")


@pytest.fixture(scope="module")
def cpu_reference(golden_model, golden) -> tuple:
    """The codes and image the CPU computes in this run (fp32, contiguous): what CUDA is compared with."""
    with torch.no_grad():
        codes = golden_model.encode(golden["frames"])
        image = golden_model.render(golden["render/source"], golden["codes/lip"], golden["codes/pose"], golden["render/exp"])
    return codes, image


def _on_cuda(golden_model, golden, mode: str, exp: torch.Tensor | None = None) -> tuple:
    """Codes and image computed on CUDA in ``mode``, the generator in channels-last memory as cmet runs it."""
    import copy

    from cmet_cli.runtime import to_channels_last

    tf32, dtype = CUDA_MODES[mode]
    flags = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = tf32
    model = to_channels_last(copy.deepcopy(golden_model).cuda())
    last = lambda t: t.cuda().contiguous(memory_format=torch.channels_last)  # noqa: E731
    exp = golden["render/exp"] if exp is None else exp
    try:
        with torch.no_grad(), torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
            codes = model.encode(last(golden["frames"]))
            image = model.render(last(golden["render/source"]), golden["codes/lip"].cuda(), golden["codes/pose"].cuda(),
                                 exp.cuda())
        return codes, image.float().cpu()
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = flags


def cuda_image_error(actual: torch.Tensor, expected: torch.Tensor) -> str | None:
    spread = _spread(actual, expected)
    if spread["max"] > CUDA_IMAGE_MAX:
        return f"max|Δ| {spread['max']:.3g}·s > {CUDA_IMAGE_MAX:g}·s"
    if spread["mean"] > IMAGE_MEAN:
        return f"mean|Δ| {spread['mean']:.3g}·s > {IMAGE_MEAN:g}·s"
    return None


@pytest.mark.cuda
@pytest.mark.parametrize("mode", list(CUDA_MODES))
def test_cuda_matches_the_cpu(golden_model, golden, cpu_reference, mode: str) -> None:
    """The CUDA path computes what the CPU computes, in fp32, TF32 and bf16 (bounds: the comment above)."""
    _cuda_or_skip()
    cpu_codes, cpu_image = cpu_reference
    codes, image = _on_cuda(golden_model, golden, mode)
    spreads = {name: _spread(getattr(codes, name), getattr(cpu_codes, name)) for name in ("exp", "pose", "lip")}
    _record(f"test_cuda_matches_the_cpu[{mode}]", image=_spread(image, cpu_image), **spreads)
    for name in ("exp", "pose", "lip"):
        ours, ref = getattr(codes, name).float().cpu(), getattr(cpu_codes, name)
        if mode == "fp32":
            _assert_close(ours, ref)
        else:
            assert (ours - ref).abs().max() <= 0.05 * max(1.0, ref.abs().max().item()), name
    if mode == "fp32":
        assert cuda_image_error(image, cpu_image) is None


@pytest.mark.cuda
@pytest.mark.parametrize("break_", ["one to-RGB weight x1.1", "expression codes of the two frames swapped"])
def test_cuda_check_bites(golden_model, golden, cpu_reference, break_: str) -> None:
    """The CUDA bound still fails the breaks the CPU bound fails (test_golden_check_bites)."""
    _cuda_or_skip()
    exp = golden["render/exp"]
    weight = golden_model.dec.to_rgbs[-1].conv[0].weight
    saved = weight.detach().clone()
    try:
        with torch.no_grad():
            if break_.startswith("one to-RGB"):
                _scale_first_element(weight, 1.1)
            else:
                exp = exp.flip(0)
        _, image = _on_cuda(golden_model, golden, "fp32", exp=exp)
    finally:
        with torch.no_grad():
            weight.copy_(saved)
    assert cuda_image_error(image, cpu_reference[1]) is not None


@pytest.mark.cuda
@pytest.mark.weights
def test_bf16_crops_match_fp32_on_cuda(tmp_path) -> None:
    """Rendered crops in bf16 autocast match fp32 at PSNR >= 40 dB — with the real weights: the seeded
    stand-in weights amplify rounding far more than trained ones (bf16 moves their images by up to 3.6)."""
    _cuda_or_skip()
    import os

    from cmet_cli import weights
    from cmet_cli.checkpoint import read_checkpoint

    folder = os.environ.get("CMET_WEIGHTS_DIR")
    path = Path(folder) / "EDTalk.pt" if folder else weights.installed_path(weights.load_lock()["edtalk"])
    if not path.is_file():
        pytest.skip("real EDTalk weights absent (run `cmet download-weights` or set CMET_WEIGHTS_DIR)")
    state = read_checkpoint(path, "gen")
    model = EDTalkGenerator(generator_config(state)).eval()
    model.load_state_dict(state, strict=True)
    model.cuda()
    frames = _frames(4, 256).cuda()

    def crops(dtype):
        with torch.no_grad(), torch.autocast("cuda", dtype=dtype, enabled=dtype is not None):
            codes = model.encode(frames)
            out = model.render(model.encode_source(frames[:1]), codes.lip, codes.pose, codes.exp)
        return out.float().clamp(-1, 1).add(1).mul(127.5).round()

    mse = (crops(torch.bfloat16) - crops(None)).pow(2).mean().item()
    assert 10 * math.log10(255.0**2 / max(mse, 1e-12)) >= 40.0
