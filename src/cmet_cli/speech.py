"""Speech side of C-MET: emotion2vec+large in plain PyTorch and speech loading (the bank: ``presets``).

The network mirrors FunASR's ``Emotion2vec`` (data2vec 2.0 audio encoder) closely enough that the
official ``model.pt`` loads unchanged: same tensor names, same operator order, same precision
choices (fp32 LayerNorm in the conv extractor, fp32 attention logits and softmax).
"""
from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import MediaError, WeightsError

SAMPLE_RATE = 16000
MIN_SECONDS = 0.5
SILENCE_PEAK = 1e-4

_AUDIO = "modality_encoders.AUDIO."
# (kernel, stride) of the conv feature extractor: 320-sample hop, 400-sample receptive field.
_CONV_SPEC: tuple[tuple[int, int], ...] = ((10, 5), (3, 2), (3, 2), (3, 2), (3, 2), (2, 2), (2, 2))
_RECEPTIVE_FIELD = 400
# Checkpoint entries that are not on the embedding path, ignored by name.
_IGNORED_PREFIXES: tuple[str, ...] = (
    _AUDIO + "decoder.",  # training-only Decoder1d
    "proj.",  # 9-way emotion classifier head
    "ema.",
    "_ema.",
)


# --------------------------------------------------------------------------------------------
# Network


@dataclass(frozen=True)
class Emotion2VecConfig:
    """Hyper-parameters of the encoder, as read from a checkpoint's tensor shapes."""

    dim: int = 1024
    heads: int = 16
    extra_tokens: int = 10
    prenet_depth: int = 16
    depth: int = 8
    mlp_hidden: int = 4096
    conv_channels: int = 512
    pos_depth: int = 5
    pos_kernel: int = 19
    pos_groups: int = 16


def alibi_slopes(heads: int) -> list[float]:
    """ALiBi slopes: 2^(-8(h+1)/H) for a power-of-two H, interleaved from 2H otherwise."""
    if math.log2(heads).is_integer():
        start = 2.0 ** (-8.0 / heads)
        return [start ** (h + 1) for h in range(heads)]
    lower = 2 ** math.floor(math.log2(heads))
    return alibi_slopes(lower) + alibi_slopes(2 * lower)[0::2][: heads - lower]


def alibi_bias(frames: int, scale: Tensor, extra: int, device: torch.device) -> Tensor:
    """(1, H, extra+T, extra+T) fp32 bias: -slope·|i-j|·max(scale, 0), zero rows/columns for extra tokens."""
    heads = scale.numel()
    slopes = torch.tensor(alibi_slopes(heads), dtype=torch.float32, device=device)
    pos = torch.arange(frames, device=device)
    distance = -(pos[None, :] - pos[:, None]).abs().float()
    bias = slopes[:, None, None] * distance[None]
    bias = bias * scale.detach().reshape(heads, 1, 1).float().clamp_min(0)
    return F.pad(bias, (extra, 0, extra, 0)).unsqueeze(0)


class _ConvLayer(nn.Sequential):
    """Conv1d without bias, LayerNorm over channels in fp32, exact GELU (keys ``0.weight``, ``2.1.*``)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int) -> None:
        super().__init__(
            nn.Conv1d(c_in, c_out, kernel, stride=stride, bias=False),
            nn.Identity(),
            nn.Sequential(nn.Identity(), nn.LayerNorm(c_out)),
        )

    def forward(self, x: Tensor) -> Tensor:
        x = self[0](x)
        norm: nn.LayerNorm = self[2][1]
        y = F.layer_norm(
            x.transpose(1, 2).float(), norm.normalized_shape, norm.weight.float(), norm.bias.float(), norm.eps
        )
        return F.gelu(y.transpose(1, 2).type_as(x))


class _ConvFeatureExtractor(nn.Module):
    """Raw waveform (B, T) -> (B, C, T/320)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        c_ins = [1] + [channels] * (len(_CONV_SPEC) - 1)
        self.conv_layers = nn.ModuleList(
            _ConvLayer(c_in, channels, k, s) for c_in, (k, s) in zip(c_ins, _CONV_SPEC)
        )

    def forward(self, wave: Tensor) -> Tensor:
        x = wave.unsqueeze(1)
        for layer in self.conv_layers:
            x = layer(x)
        return x


class _PositionalConv(nn.Sequential):
    """Relative positional encoder: grouped convs, each followed by a plain LayerNorm and GELU (keys ``{1..n}.0.*``)."""

    def __init__(self, dim: int, depth: int, kernel: int, groups: int) -> None:
        convs = [nn.Sequential(nn.Conv1d(dim, dim, kernel, padding=kernel // 2, groups=groups)) for _ in range(depth)]
        super().__init__(nn.Identity(), *convs)

    def forward(self, x: Tensor) -> Tensor:
        frames, dim = x.shape[1], x.shape[2]
        y = x.transpose(1, 2)
        for layer in list(self)[1:]:
            y = layer[0](y)[..., :frames]  # an even kernel yields one extra frame: drop it
            y = F.layer_norm(y.transpose(1, 2), (dim,)).transpose(1, 2)
            y = F.gelu(y)
        return y.transpose(1, 2)


class _Attention(nn.Module):
    """Multi-head self-attention with an additive fp32 ALiBi bias and an fp32 softmax."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, bias: Tensor) -> Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        logits = (q * self.scale) @ k.transpose(-2, -1)
        attn = (logits.float() + bias).softmax(dim=-1).to(v.dtype)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class _Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class _Block(nn.Module):
    """Post-norm transformer block: x = norm1(x + attn(x)); x = norm2(x + mlp(x))."""

    def __init__(self, dim: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = _Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = _Mlp(dim, hidden)

    def forward(self, x: Tensor, bias: Tensor) -> Tensor:
        x = self.norm1(x + self.attn(x, bias))
        return self.norm2(x + self.mlp(x))


class _ContextEncoder(nn.Module):
    """LayerNorm, then the modality-specific pre-net blocks."""

    def __init__(self, cfg: Emotion2VecConfig) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(_Block(cfg.dim, cfg.heads, cfg.mlp_hidden) for _ in range(cfg.prenet_depth))
        self.norm = nn.LayerNorm(cfg.dim)

    def forward(self, x: Tensor, bias: Tensor) -> Tensor:
        x = self.norm(x)
        for block in self.blocks:
            x = block(x, bias)
        return x


class _AudioEncoder(nn.Module):
    """Conv features, projection, relative positions, extra tokens, pre-net: (B, T) -> (B, n+T', D)."""

    def __init__(self, cfg: Emotion2VecConfig) -> None:
        super().__init__()
        self.extra_tokens = nn.Parameter(torch.zeros(1, cfg.extra_tokens, cfg.dim))
        self.alibi_scale = nn.Parameter(torch.ones(1, 1, cfg.heads, 1, 1))
        self.local_encoder = _ConvFeatureExtractor(cfg.conv_channels)
        self.project_features = nn.Sequential(
            nn.Identity(), nn.LayerNorm(cfg.conv_channels), nn.Linear(cfg.conv_channels, cfg.dim)
        )
        self.relative_positional_encoder = _PositionalConv(cfg.dim, cfg.pos_depth, cfg.pos_kernel, cfg.pos_groups)
        self.context_encoder = _ContextEncoder(cfg)

    def forward(self, wave: Tensor) -> tuple[Tensor, Tensor]:
        """Pre-net output with the extra tokens first, and the ALiBi bias the main blocks reuse."""
        x = self.project_features(self.local_encoder(wave).transpose(1, 2))
        x = x + self.relative_positional_encoder(x)
        bias = alibi_bias(x.shape[1], self.alibi_scale, self.extra_tokens.shape[1], x.device)
        x = torch.cat([self.extra_tokens.expand(x.shape[0], -1, -1).to(x.dtype), x], dim=1)
        return self.context_encoder(x, bias), bias


class Emotion2Vec(nn.Module):
    """emotion2vec+large utterance encoder (FunASR ``Emotion2vec``, inference only)."""

    def __init__(self, cfg: Emotion2VecConfig = Emotion2VecConfig()) -> None:
        super().__init__()
        self.config = cfg
        self.modality_encoders = nn.ModuleDict({"AUDIO": _AudioEncoder(cfg)})
        self.blocks = nn.ModuleList(_Block(cfg.dim, cfg.heads, cfg.mlp_hidden) for _ in range(cfg.depth))

    def forward(self, source: Tensor) -> Tensor:
        """Normalised waveforms (B, T) -> last-block frame features (B, T', D), extra tokens dropped."""
        x, bias = self.modality_encoders["AUDIO"](source)
        for block in self.blocks:
            x = block(x, bias)
        return x[:, self.config.extra_tokens :]

    @classmethod
    def from_state_dict(cls, state_dict: dict[str, Tensor]) -> Emotion2Vec:
        """Build from a checkpoint dict: shapes give the hyper-parameters; every tensor is checked.

        The tensors are adopted without a copy (converted to float32 where needed); entries off the
        embedding path (decoder, classifier head, EMA) are ignored by name, anything else unknown
        raises ``WeightsError``.
        """
        cfg = infer_config(state_dict)
        with torch.device("meta"):
            model = cls(cfg)
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        check_state_dict(state_dict, expected)
        tensors = {k: state_dict[k].to(torch.float32) for k in expected}
        model.load_state_dict(tensors, strict=True, assign=True)
        return model.eval().requires_grad_(False)

    @classmethod
    def from_file(cls, path: str | Path) -> Emotion2Vec:
        """Load the official ``model.pt`` (a plain tensor dict)."""
        from .checkpoint import read_checkpoint

        return cls.from_state_dict(read_checkpoint(path))

    def frames(self, waveform: np.ndarray | Tensor) -> Tensor:
        """Mono 16 kHz waveform (T,) -> (frames, D) float32 CPU features of the last block."""
        wave = _as_waveform(waveform)
        param = self.modality_encoders["AUDIO"].extra_tokens
        source = F.layer_norm(wave.to(param.device), wave.shape).to(param.dtype).unsqueeze(0)
        with torch.inference_mode():
            return self(source)[0].float().cpu()

    def embed(self, waveform: np.ndarray | Tensor) -> Tensor:
        """Mono 16 kHz waveform (T,) -> (D,) float32 CPU utterance embedding (mean over frames)."""
        return self.frames(waveform).mean(dim=0)


def _as_waveform(waveform: np.ndarray | Tensor) -> Tensor:
    if isinstance(waveform, Tensor):
        wave = waveform.detach().to(torch.float32)
    else:
        wave = torch.from_numpy(np.array(waveform, dtype=np.float32))  # a copy: cached waves are read-only
    if wave.ndim != 1:
        raise ValueError(f"expected a mono waveform of shape (T,), got {tuple(wave.shape)}")
    if wave.numel() < _RECEPTIVE_FIELD:
        raise ValueError(f"waveform too short: {wave.numel()} samples, at least {_RECEPTIVE_FIELD} needed")
    return wave


# --------------------------------------------------------------------------------------------
# Checkpoint validation


def _tensor(state: dict[str, Tensor], key: str, ndim: int) -> Tensor:
    if key not in state:
        raise WeightsError(f"emotion2vec weights: missing tensor {key!r}")
    value = state[key]
    if not isinstance(value, Tensor) or value.ndim != ndim:
        shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise WeightsError(f"emotion2vec weights: {key!r} has shape {shape}, expected a {ndim}-d tensor")
    return value


def _count_indexed(state: dict[str, Tensor], prefix: str) -> int:
    """1 + the largest N among keys ``prefix + 'N.'`` (0 when there are none)."""
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.")
    found = [int(m.group(1)) for k in state if (m := pattern.match(k))]
    return max(found) + 1 if found else 0


def infer_config(state: dict[str, Tensor]) -> Emotion2VecConfig:
    """Read the hyper-parameters from the tensor shapes and key counts of a checkpoint."""
    extra = _tensor(state, _AUDIO + "extra_tokens", 3)
    scale = _tensor(state, _AUDIO + "alibi_scale", 5)
    dim, heads = extra.shape[2], scale.shape[2]
    if heads == 0 or dim % heads:
        raise WeightsError(
            f"emotion2vec weights: {_AUDIO}alibi_scale gives {heads} heads, which do not divide "
            f"the width {dim} of {_AUDIO}extra_tokens"
        )
    pos_key = _AUDIO + "relative_positional_encoder.1.0.weight"
    pos = _tensor(state, pos_key, 3)
    if pos.shape[1] == 0 or dim % pos.shape[1]:
        raise WeightsError(f"emotion2vec weights: {pos_key!r} has shape {tuple(pos.shape)}")
    return Emotion2VecConfig(
        dim=dim,
        heads=heads,
        extra_tokens=extra.shape[1],
        prenet_depth=_count_indexed(state, _AUDIO + "context_encoder.blocks."),
        depth=_count_indexed(state, "blocks."),
        mlp_hidden=_tensor(state, "blocks.0.mlp.fc1.weight", 2).shape[0],
        conv_channels=_tensor(state, _AUDIO + "local_encoder.conv_layers.0.0.weight", 3).shape[0],
        pos_depth=_count_indexed(state, _AUDIO + "relative_positional_encoder.") - 1,
        pos_kernel=pos.shape[2],
        pos_groups=dim // pos.shape[1],
    )


def check_state_dict(state: dict[str, Tensor], expected: dict[str, tuple[int, ...]]) -> None:
    """Raise ``WeightsError`` naming the first missing, mis-shaped or unknown tensor."""
    for key, shape in expected.items():
        if key not in state:
            raise WeightsError(f"emotion2vec weights: missing tensor {key!r}")
        value = state[key]
        if not isinstance(value, Tensor) or not value.is_floating_point():
            raise WeightsError(f"emotion2vec weights: {key!r} is not a floating-point tensor")
        if tuple(value.shape) != shape:
            raise WeightsError(
                f"emotion2vec weights: {key!r} has shape {tuple(value.shape)}, expected {shape}"
            )
    unknown = sorted(k for k in state if k not in expected and not k.startswith(_IGNORED_PREFIXES))
    if unknown:
        more = f" (and {len(unknown) - 3} more)" if len(unknown) > 3 else ""
        raise WeightsError(
            f"emotion2vec weights: unexpected tensor(s) {', '.join(map(repr, unknown[:3]))}{more}: "
            "not part of emotion2vec+large"
        )


# --------------------------------------------------------------------------------------------
# Speech loading


def _sinc_kernel(orig: int, new: int, zero_crossings: int = 6, rolloff: float = 0.99) -> tuple[Tensor, int]:
    """Hann-windowed sinc polyphase kernel (new, 1, K) for reduced rates orig -> new, and its half-width."""
    base = min(orig, new) * rolloff
    width = math.ceil(zero_crossings * orig / base)
    idx = torch.arange(-width, width + orig, dtype=torch.float64)[None, None] / orig
    t = (torch.arange(0, -new, -1, dtype=torch.float64)[:, None, None] / new + idx) * base
    t = t.clamp(-zero_crossings, zero_crossings)
    window = torch.cos(t * math.pi / zero_crossings / 2) ** 2
    t = t * math.pi
    sinc = torch.where(t == 0, torch.ones_like(t), torch.sin(t) / t)
    return (sinc * window * (base / orig)).to(torch.float32), width


def resample(wave: np.ndarray, orig_rate: int, new_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited resampling of a 1-d float32 signal, as torchaudio's with its defaults.

    Hann-windowed sinc, 6 zero crossings, rolloff 0.99; the kernel is computed in float64 and cast
    to float32 as ``torchaudio.transforms.Resample`` (FunASR's loader) does.
    """
    if orig_rate == new_rate:
        return wave
    gcd = math.gcd(orig_rate, new_rate)
    orig, new = orig_rate // gcd, new_rate // gcd
    kernel, width = _sinc_kernel(orig, new)
    x = F.pad(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))[None], (width, width + orig))
    out = F.conv1d(x[:, None], kernel, stride=orig).transpose(1, 2).reshape(-1)
    return out[: math.ceil(new * len(wave) / orig)].numpy()


def _read_soundfile(path: Path) -> np.ndarray:
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return resample(data.mean(axis=1), int(rate))


def _read_ffmpeg(path: Path, soundfile_reason: str) -> np.ndarray:
    from .media import decode_audio

    try:
        return decode_audio(path, SAMPLE_RATE)
    except MediaError as exc:
        if str(exc) == "has no audio stream":
            raise MediaError(f"speech file {path} has no audio stream") from None
        raise MediaError(f"cannot decode speech file {path}: {exc} ({soundfile_reason})") from None


ClipKey = tuple[str, int, int]  # (resolved path, modification time in ns, size in bytes)
_DECODED: dict[ClipKey, np.ndarray] = {}  # the waveforms of this process, by ``clip_key``
_DECODED_MAX = 32  # clips kept (a minute of speech is ~4 MB); the oldest goes first
_DECODED_LOCK = threading.Lock()


def clip_key(path: str | Path) -> ClipKey:
    """What identifies a speech clip's content without reading it: a clip edited in place gets a new key."""
    path = Path(path)
    if not path.exists():
        raise MediaError(f"speech file not found: {path}")
    if not path.is_file():
        raise MediaError(f"speech file {path} is not a regular file")
    stat = path.stat()
    return str(path.resolve()), stat.st_mtime_ns, stat.st_size


def load_speech(path: str | Path) -> np.ndarray:
    """Read speech as float32 mono 16 kHz: soundfile for what libsndfile reads, ffmpeg for the rest.

    Each clip is decoded once per process (cached by ``clip_key``): the check before the models load and
    the emotion plan after share one decode. The array is shared, so it is read-only.
    """
    key = clip_key(path)
    with _DECODED_LOCK:
        wave = _DECODED.get(key)
    if wave is None:
        wave = _decode_speech(Path(path))
        wave.setflags(write=False)
        with _DECODED_LOCK:
            _DECODED[key] = wave
            while len(_DECODED) > _DECODED_MAX:
                del _DECODED[next(iter(_DECODED))]
    return wave


def _decode_speech(path: Path) -> np.ndarray:
    """Decode and check one clip (``load_speech`` without the cache)."""
    try:
        wave = _read_soundfile(path)
    except sf.SoundFileError as exc:
        wave = _read_ffmpeg(path, f"soundfile: {exc}")
    seconds = len(wave) / SAMPLE_RATE
    if seconds < MIN_SECONDS:
        raise MediaError(f"speech file {path} is too short ({seconds:.2f} s; at least {MIN_SECONDS} s needed)")
    if not np.isfinite(wave).all():
        raise MediaError(f"speech file {path} contains invalid (NaN or infinite) samples")
    if np.abs(wave).max() < SILENCE_PEAK:
        raise MediaError(f"speech file {path} is silent")
    return wave
