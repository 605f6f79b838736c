"""The EDTalk generator (encoder, latent heads, flow-warping StyleGAN2 decoder) in plain PyTorch.

State-dict keys and shapes equal the official ``EDTalk.pt["gen"]``, so the checkpoint loads
with ``strict=True``. Data flow:

1. ``encode(frames)``: one pass of the appearance encoder ``enc.net_app`` gives a latent
   ``wa`` (B, 512); ``fc`` then the heads ``exp_fc``, ``pose_fc``, ``lip_fc`` give the codes.
2. ``encode_source(source)``, once per source frame: ``wa``, the skip features of the
   encoder (8² … size²) and the part of each expression block (EEM) that does not depend on
   the expression, ``instance_norm(conv2(feature))``.
3. ``render(source, lip, pose, exp)``: the 36 codes weight an orthonormal basis Q (QR of the
   direction weights, computed once per loaded weights) → ``direction``; the expression codes
   alone give the expression latent ``e``. The decoder starts from a constant 4×4 input
   styled by ``wa + direction``; at every scale it modulates the source feature with ``e``
   (EEM), predicts a flow and a mask (ToFlow) that warp it, and adds the warped feature's RGB
   to an upsampled RGB skip (ToRGB). The last skip is the (unclamped) image.

Savings against the reference, with the same numbers: the dead ``conv1 → norm1`` branch of
every EEM is not computed, and ``instance_norm(conv2(feature))`` is computed with the source,
not per frame. Under ``torch.autocast`` the convolutions run in low precision; the latent
MLPs, the QR, the modulation/demodulation factors, the flow/mask/warp and the RGB skips run
in float32. Inference only: Q is cached without gradient.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

_SQRT2 = math.sqrt(2.0)


@dataclass(frozen=True)
class GeneratorConfig:
    """Hyper-parameters of ``Generator(size, style_dim, lip_dim, pose_dim, exp_dim, channel_multiplier)``."""

    size: int = 256
    style_dim: int = 512
    lip_dim: int = 20
    pose_dim: int = 6
    exp_dim: int = 10
    channel_multiplier: int = 1

    def __post_init__(self) -> None:
        if self.size < 8 or self.size > 1024 or self.size & (self.size - 1):
            raise ValueError(f"size must be a power of two from 8 to 1024, got {self.size}")


GENERATOR_KEYS = ("enc.net_app.convs.0.0.weight", "fc.0.weight", "lip_fc.2.weight", "pose_fc.2.weight", "exp_fc.2.weight")


def generator_config(state: dict) -> GeneratorConfig:
    """The configuration of a checkpoint's generator, read from its shapes (so small test models load too);
    ``KeyError`` naming the first missing entry where it is not EDTalk's generator."""
    missing = [key for key in GENERATOR_KEYS if key not in state]
    if missing:
        raise KeyError(missing[0])
    blocks = sum(1 for k in state if k.startswith("enc.net_app.convs.") and k.endswith(".conv1.0.weight"))
    first = state["enc.net_app.convs.0.0.weight"].shape[0]
    size = 2 ** (blocks + 2)
    base = {256: 64, 512: 32, 128: 128, 64: 256}.get(size)
    return GeneratorConfig(size=size, style_dim=state["fc.0.weight"].shape[0],
                           lip_dim=state["lip_fc.2.weight"].shape[0], pose_dim=state["pose_fc.2.weight"].shape[0],
                           exp_dim=state["exp_fc.2.weight"].shape[0],
                           channel_multiplier=max(1, first // base) if base and size >= 64 else 1)


@dataclass(frozen=True)
class Codes:
    """Per-frame codes: expression (B, exp_dim), head pose (B, pose_dim), lips (B, lip_dim)."""

    exp: Tensor
    pose: Tensor
    lip: Tensor


@dataclass
class AppearanceSource:
    """An encoded source frame, reused for every rendered frame.

    ``wa``: latent (1 or B, style_dim); ``feats``: encoder skip features from 8² to size²;
    ``normalized``: ``instance_norm(conv2(feat))`` of each EEM, filled by ``encode_source``
    (computed on first use when left ``None``).
    """

    wa: Tensor
    feats: list[Tensor]
    normalized: list[Tensor] | None = None


def _float32(t: Tensor) -> torch.autocast:
    """A context in which autocast is off on ``t``'s device; inputs enter it through ``_wide``."""
    return torch.autocast(t.device.type, enabled=False)


def _wide(t: Tensor) -> Tensor:
    """``t`` in float32, or float64 if it already is."""
    return t.to(torch.promote_types(t.dtype, torch.float32))


def _channels(multiplier: int) -> dict[int, int]:
    """StyleGAN2's channel count per resolution."""
    narrow = {64: 256, 128: 128, 256: 64, 512: 32, 1024: 16}
    return {4: 512, 8: 512, 16: 512, 32: 512} | {r: c * multiplier for r, c in narrow.items()}


def _blur_kernel(gain: float) -> Tensor:
    """outer([1,3,3,1], [1,3,3,1]) normalised to sum ``gain``."""
    k = torch.tensor([1.0, 3.0, 3.0, 1.0])
    k = torch.outer(k, k)
    return k * (gain / k.sum())


def upfirdn2d(x: Tensor, kernel: Tensor, up: int = 1, pad: tuple[int, int] = (0, 0)) -> Tensor:
    """Insert ``up - 1`` zeros after every sample, zero-pad by ``pad`` on both axes, convolve with ``kernel``."""
    b, c, h, w = x.shape
    if up > 1:
        x = F.pad(x.reshape(b, c, h, 1, w, 1), [0, up - 1, 0, 0, 0, up - 1]).reshape(b, c, h * up, w * up)
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    weight = torch.flip(kernel, [0, 1]).to(x.dtype).repeat(c, 1, 1, 1)
    return F.conv2d(x, weight, groups=c)


class Blur(nn.Module):
    """The [1,3,3,1] FIR filter as ``upfirdn2d``; ``kernel`` is a persistent buffer of the checkpoint."""

    def __init__(self, pad: tuple[int, int], up: int = 1, gain: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("kernel", _blur_kernel(gain))
        self.pad = pad
        self.up = up

    def forward(self, x: Tensor) -> Tensor:
        return upfirdn2d(x, self.kernel, self.up, self.pad)


def _upsample() -> Blur:
    """2× upsampling of a skip (image or flow): zero-insertion, then the filter with gain 4."""
    return Blur(pad=(2, 1), up=2, gain=4.0)


class FusedLeakyReLU(nn.Module):
    """``leaky_relu(x + bias, 0.2) · √2`` with a per-channel bias."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x + self.bias.to(x.dtype), 0.2) * _SQRT2


class EqualConv2d(nn.Module):
    """Bias-free Conv2d whose weight is scaled at run time by 1/sqrt(fan_in) (biases sit in FusedLeakyReLU)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, kernel, kernel))
        self.scale = 1.0 / math.sqrt(cin * kernel * kernel)
        self.stride = stride
        self.padding = padding

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(x, self.weight * self.scale, None, self.stride, self.padding)


class EqualLinear(nn.Module):
    """Linear layer whose weight is scaled at run time by 1/sqrt(in_dim) (lr_mul is 1 throughout)."""

    def __init__(self, din: int, dout: int, bias_init: float = 0.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(dout, din))
        self.bias = nn.Parameter(torch.full((dout,), float(bias_init)))
        self.scale = 1.0 / math.sqrt(din)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)


class ConvLayer(nn.Sequential):
    """[Blur] → EqualConv2d → [FusedLeakyReLU]; with ``downsample`` the blur precedes a stride-2 conv."""

    def __init__(self, cin: int, cout: int, kernel: int, downsample: bool = False, activate: bool = True) -> None:
        layers: list[nn.Module] = []
        if downsample:
            p = 2 + kernel - 1
            layers.append(Blur(pad=((p + 1) // 2, p // 2)))
            layers.append(EqualConv2d(cin, cout, kernel, stride=2))
        else:
            layers.append(EqualConv2d(cin, cout, kernel, padding=kernel // 2))
        if activate:
            layers.append(FusedLeakyReLU(cout))
        super().__init__(*layers)


class ResBlock(nn.Module):
    """Down-sampling residual block: ``(conv2(conv1(x)) + skip(x)) / √2``."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv1 = ConvLayer(cin, cin, 3)
        self.conv2 = ConvLayer(cin, cout, 3, downsample=True)
        self.skip = ConvLayer(cin, cout, 1, downsample=True, activate=False)

    def forward(self, x: Tensor) -> Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / _SQRT2


class AppearanceEncoder(nn.Module):
    """``convs``: 1×1 ConvLayer, log2(size)−2 ResBlocks (size → 4 px), 4×4 EqualConv2d → latent."""

    def __init__(self, size: int, style_dim: int, channels: dict[int, int]) -> None:
        super().__init__()
        log_size = int(math.log2(size))
        convs: list[nn.Module] = [ConvLayer(3, channels[size], 1)]
        for i in range(log_size, 2, -1):
            convs.append(ResBlock(channels[2**i], channels[2 ** (i - 1)]))
        convs.append(EqualConv2d(channels[4], style_dim, 4))
        self.convs = nn.ModuleList(convs)

    def forward(self, x: Tensor, with_features: bool = True) -> tuple[Tensor, list[Tensor]]:
        """Latent (B, style_dim) and, if asked, the skip features from 8² up to size²."""
        feats = []
        for conv in self.convs[:-2]:
            x = conv(x)
            if with_features:
                feats.append(x)
        x = self.convs[-1](self.convs[-2](x))
        return x.flatten(1), feats[::-1]


class ModulatedConv2d(nn.Module):
    """StyleGAN2 modulated conv: per-sample weights (float32), one grouped conv over the batch.

    ``upsample``: stride-2 transposed conv, then the blur. The operation order is the
    reference's: its outputs are sensitive to the last bit, and the golden test checks them.
    """

    def __init__(self, cin: int, cout: int, kernel: int, style_dim: int, demodulate: bool = True, upsample: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, cout, cin, kernel, kernel))
        self.blur = Blur(pad=(1, 1), gain=4.0) if upsample else None
        self.modulation = EqualLinear(style_dim, cin, bias_init=1.0)
        self.scale = 1.0 / math.sqrt(cin * kernel * kernel)
        self.demodulate = demodulate

    def _weights(self, style: Tensor) -> Tensor:
        """(B, out, in, k, k) modulated (and demodulated) weights, in float32."""
        with _float32(style):
            s = self.modulation(_wide(style))
            weight = self.scale * self.weight * s[:, None, :, None, None]
            if self.demodulate:
                weight = weight * torch.rsqrt(weight.pow(2).sum([2, 3, 4]) + 1e-8)[:, :, None, None, None]
        return weight

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        b, cin, h, w = x.shape
        weight = self._weights(style)
        cout, k = weight.shape[1], weight.shape[-1]
        x = x.reshape(1, b * cin, h, w)
        if self.blur is None:
            out = F.conv2d(x, weight.reshape(b * cout, cin, k, k), padding=k // 2, groups=b)
            return out.reshape(b, cout, h, w)
        out = F.conv_transpose2d(x, weight.transpose(1, 2).reshape(b * cin, cout, k, k), stride=2, groups=b)
        return self.blur(out.reshape(b, cout, *out.shape[2:]))


class NoiseInjection(nn.Module):
    """Holds the checkpoint's noise strength; unused, the reference renders without noise."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))


class StyledConv(nn.Module):
    """ModulatedConv2d (3×3, demodulated) → FusedLeakyReLU."""

    def __init__(self, cin: int, cout: int, style_dim: int, upsample: bool = False) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(cin, cout, 3, style_dim, upsample=upsample)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(cout)

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        return self.activate(self.conv(x, style))


class ToRGB(nn.Module):
    """RGB of a feature (1×1 ConvLayer with activation, plus a bias), plus the upsampled RGB skip (float32)."""

    def __init__(self, cin: int, upsample: bool = True) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))
        self.upsample = _upsample() if upsample else None
        self.conv = ConvLayer(cin, 3, 1)

    def forward(self, x: Tensor, skip: Tensor | None) -> Tensor:
        with _float32(x):
            out = self.conv(_wide(x)) + self.bias
            return out if skip is None else out + self.upsample(skip)


def _identity_grid(height: int, width: int, device: torch.device) -> Tensor:
    """(1, H, W, 2) float32 sampling grid of the identity warp, x then y, from float64 linspace(−1, 1)."""
    grid = np.stack(np.meshgrid(np.linspace(-1.0, 1.0, width), np.linspace(-1.0, 1.0, height)), axis=-1)
    return torch.from_numpy(grid[None].astype(np.float32)).to(device)


class ToFlow(nn.Module):
    """Flow (tanh, 2 ch) and mask (sigmoid, 1 ch) from a 1×1 modulated conv plus the upsampled flow skip.

    Warps the (expression-modulated) source feature; everything here runs in float32.
    """

    def __init__(self, cin: int, style_dim: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))
        self.upsample = _upsample()
        self.conv = ModulatedConv2d(cin, 3, 1, style_dim, demodulate=False)

    def forward(self, x: Tensor, style: Tensor, feat: Tensor, skip: Tensor | None) -> tuple[Tensor, Tensor, Tensor]:
        """Returns (warped feature · mask, that plus x · (1 − mask), the raw 3-channel output for the next skip)."""
        with _float32(x):
            x = _wide(x)
            out = self.conv(x, style) + self.bias
            if skip is not None:
                out = out + self.upsample(skip)
            grid = _identity_grid(out.shape[2], out.shape[3], out.device) + torch.tanh(out[:, :2]).permute(0, 2, 3, 1)
            mask = torch.sigmoid(out[:, 2:3])
            warped = F.grid_sample(_wide(feat), grid, mode="bilinear", padding_mode="zeros", align_corners=False) * mask
            return warped, warped + x * (1.0 - mask), out


class ADAIN(nn.Module):
    """Instance norm (no affine) then ``x · (1 + γ(e)) + β(e)``; here applied to an already normalised x."""

    def __init__(self, channels: int, feature_dim: int, hidden: int = 128) -> None:
        super().__init__()
        self.mlp_shared = nn.Sequential(nn.Linear(feature_dim, hidden), nn.ReLU())
        self.mlp_gamma = nn.Linear(hidden, channels)
        self.mlp_beta = nn.Linear(hidden, channels)

    def forward(self, normalized: Tensor, e: Tensor) -> Tensor:
        actv = self.mlp_shared(e)
        return normalized * (1.0 + self.mlp_gamma(actv)[:, :, None, None]) + self.mlp_beta(actv)[:, :, None, None]


class EEM(nn.Module):
    """Expression block: ``x + norm2(conv2(x), e)``.

    ``conv1``/``norm1`` exist for the checkpoint; the reference computes them and discards the result.
    """

    def __init__(self, channels: int, feature_dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.norm1 = ADAIN(channels, feature_dim)
        self.norm2 = ADAIN(channels, feature_dim)

    def prepare(self, feat: Tensor) -> Tensor:
        """The expression-independent part, ``instance_norm(conv2(feat))`` (normalised in float32)."""
        out = self.conv2(feat)
        with _float32(out):
            return F.instance_norm(_wide(out))

    def forward(self, feat: Tensor, normalized: Tensor, e: Tensor) -> Tensor:
        with _float32(e):
            return _wide(feat) + self.norm2(_wide(normalized), _wide(e))


class ConstantInput(nn.Module):
    """The learned 4×4 input of the decoder."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, 4, 4))


class Synthesis(nn.Module):
    """The decoder: constant input → ``conv1`` → one block per scale 8 … size (see the module docstring)."""

    def __init__(self, size: int, style_dim: int, channels: dict[int, int]) -> None:
        super().__init__()
        self.input = ConstantInput(channels[4])
        self.conv1 = StyledConv(channels[4], channels[4], style_dim)
        self.to_rgb1 = ToRGB(channels[4], upsample=False)  # in the checkpoint, unused
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        self.to_flows = nn.ModuleList()
        self.fineadainresblock = nn.ModuleList()
        cin = channels[4]
        for i in range(3, int(math.log2(size)) + 1):
            cout = channels[2**i]
            self.convs.append(StyledConv(cin, cout, style_dim, upsample=True))
            self.convs.append(StyledConv(cout, cout, style_dim))
            self.to_rgbs.append(ToRGB(cout))
            self.to_flows.append(ToFlow(cout, style_dim))
            self.fineadainresblock.append(EEM(cout, style_dim))
            cin = cout

    def forward(self, latent: Tensor, feats: list[Tensor], normalized: list[Tensor], e: Tensor) -> Tensor:
        """Image (B, 3, size, size) from the style latent (B, style_dim), source features and expression latent."""
        out = self.input.input.repeat(latent.shape[0], 1, 1, 1)
        out = self.conv1(out, latent)
        rgb = flow = None
        blocks = zip(self.convs[::2], self.convs[1::2], self.fineadainresblock, self.to_flows, self.to_rgbs, feats, normalized)
        for up_conv, conv, eem, to_flow, to_rgb, feat, norm in blocks:
            out = conv(up_conv(out, latent), latent)
            warped, out, flow = to_flow(out, latent, eem(feat, norm, e), flow)
            rgb = to_rgb(warped, rgb)
        return rgb


class Direction(nn.Module):
    """A bank of latent directions (style_dim × n), orthonormalised by QR at use."""

    def __init__(self, style_dim: int, count: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(style_dim, count))


def _forget_basis(module: EDTalkGenerator, _incompatible_keys: object) -> None:
    """load_state_dict post-hook: the cached QR basis belongs to the old weights."""
    module._basis_cache = None


def _head(style_dim: int, out_dim: int) -> nn.Sequential:
    """EqualLinear style_dim → style_dim → style_dim → out_dim, no activation."""
    return nn.Sequential(EqualLinear(style_dim, style_dim), EqualLinear(style_dim, style_dim), EqualLinear(style_dim, out_dim))


class EDTalkGenerator(nn.Module):
    """EDTalk's ``Generator``: ``encode`` frames to codes, ``encode_source`` once, ``render`` per batch of codes."""

    def __init__(self, config: GeneratorConfig = GeneratorConfig()) -> None:
        super().__init__()
        self.config = config
        sd = config.style_dim
        channels = _channels(config.channel_multiplier)
        self.enc = nn.ModuleDict({"net_app": AppearanceEncoder(config.size, sd, channels)})  # names as in the checkpoint
        self.dec = Synthesis(config.size, sd, channels)
        self.direction_lipnonlip = Direction(sd, config.lip_dim + config.pose_dim)
        self.direction_exp = Direction(sd, config.exp_dim)
        self.fc = nn.Sequential(*(EqualLinear(sd, sd) for _ in range(4)))
        self.lip_fc = _head(sd, config.lip_dim)
        self.pose_fc = _head(sd, config.pose_dim)
        self.exp_fc = _head(sd, config.exp_dim)
        self._basis_cache: tuple[tuple, Tensor] | None = None
        self.register_load_state_dict_post_hook(_forget_basis)

    def encode(self, frames: Tensor) -> Codes:
        """Codes of frames (B, 3, size, size) in [−1, 1]: one encoder pass, the MLPs in float32."""
        wa, _ = self.enc["net_app"](frames, with_features=False)
        with _float32(wa):
            shared = self.fc(_wide(wa))
            return Codes(exp=self.exp_fc(shared), pose=self.pose_fc(shared), lip=self.lip_fc(shared))

    def encode_source(self, source: Tensor) -> AppearanceSource:
        """Encode the appearance frame(s) (1 or B, 3, size, size) once for many ``render`` calls."""
        wa, feats = self.enc["net_app"](source)
        return AppearanceSource(wa=wa, feats=feats, normalized=self._normalized(feats))

    def render(self, source: Tensor | AppearanceSource, lip: Tensor, pose: Tensor, exp: Tensor) -> Tensor:
        """Image (B, 3, size, size), unclamped, of the source re-posed by the codes (B, ·) of each frame.

        ``source``: an ``AppearanceSource`` or frames to encode; a batch of 1 is shared by all B codes.
        """
        batch = source.shape[0] if isinstance(source, Tensor) else source.wa.shape[0]
        if batch not in (1, lip.shape[0]):
            raise ValueError(f"source batch {batch} does not match {lip.shape[0]} codes")
        if isinstance(source, Tensor):
            source = self.encode_source(source)
        normalized = source.normalized if source.normalized is not None else self._normalized(source.feats)
        latent, e = self._latents(source.wa, lip, pose, exp)
        return self.dec(latent, source.feats, normalized, e)

    def _normalized(self, feats: list[Tensor]) -> list[Tensor]:
        return [eem.prepare(f) for eem, f in zip(self.dec.fineadainresblock, feats)]

    def _latents(self, wa: Tensor, lip: Tensor, pose: Tensor, exp: Tensor) -> tuple[Tensor, Tensor]:
        """Style latent ``wa + α·Qᵀ`` and expression latent ``exp·Q_expᵀ`` (float32)."""
        q = self._basis()
        with _float32(wa):
            alpha = _wide(torch.cat([lip, pose, exp], dim=-1))
            parts = alpha[:, :, None] * q.T  # (B, 36, style_dim): summed like the reference, not a matmul
            return _wide(wa) + parts.sum(1), parts[:, -exp.shape[-1]:].sum(1)

    def _basis(self) -> Tensor:
        """Q of the reduced QR of [direction_lipnonlip | direction_exp] + 1e-8, float32, cached per weights."""
        weights = (self.direction_lipnonlip.weight, self.direction_exp.weight)
        # in-place edits bump _version (inference tensors have none; load_state_dict also clears the cache)
        key = tuple((w.device, w.data_ptr(), None if w.is_inference() else w._version) for w in weights)
        if self._basis_cache is None or self._basis_cache[0] != key:
            with torch.no_grad(), _float32(weights[0]):
                w = torch.cat(weights, dim=-1).float() + 1e-8
                on_cpu = w.device.type == "mps"  # no QR kernel there
                q = torch.linalg.qr(w.cpu() if on_cpu else w, mode="reduced").Q.to(w.device)
            self._basis_cache = (key, q)
        return self._basis_cache[1]
