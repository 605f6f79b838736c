"""The C-MET connector: predicts expression-code edits from a speech emotion vector.

Computation (eval mode, state-dict compatible with the official checkpoint
``_epoch_2105_checkpoint_step000200000.pth``, key ``state_dict``):

* A window holds ``T = 5`` frames of 10-d EDTalk expression codes.  Two code
  streams are embedded, each frame separately, by small 1-D conv encoders
  (``ref_encoder`` for the reference window, ``exp_encoder`` for the neutral
  window): the code is a 1-channel length-10 signal, passed through 13
  Conv1d+BatchNorm1d blocks (ReLU; the stride-1 same-width blocks add their
  input before the activation; the last block uses Tanh), ending as a
  ``hidden``-d vector.  One LayerNorm (``Norm``), shared by both streams, is
  applied to each embedding.
* The emotion vector (``e2v``, 1024-d emotion2vec difference) becomes one token
  through ``speaker_encoder``: Linear, GELU, LayerNorm.
* 11 tokens ``[ref_t + PE_r[t] + mod[1]]x5, [speaker + mod[2]], [exp_t + PE_e[t] +
  mod[3]]x5`` go through 4 post-norm ``TransformerEncoderLayer`` (4 heads,
  feed-forward 1024, ReLU, batch-first).  The last 5 outputs pass the projector
  (Linear hidden->10, GELU, Linear 10->10): one 10-d *direction* per frame.
* Rollout over a clip: non-overlapping windows of 5 frames, processed in order.
  The first window's reference is zeros (or a given previous direction), every
  next window's reference is the previous window's predicted direction, and the
  edited code is ``neutral + direction``.  A short last window is padded by
  repeating its last frame; only real frames are returned.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = ["ConnectorConfig", "Connector"]

# Modality ids of the token embedding (0 is padding).
_MOD_REF, _MOD_SPEAKER, _MOD_EXP = 1, 2, 3

# (cin, cout, kernel, stride, padding, residual) of the code encoder; the last
# entry's output width is the hidden size and it uses Tanh.
_ENCODER_LAYOUT: tuple[tuple[int, int, int, int, int, bool], ...] = (
    (1, 4, 3, 1, 1, False),
    (4, 8, 3, 2, 1, False),
    (8, 8, 3, 1, 1, True),
    (8, 8, 3, 1, 1, True),
    (8, 16, 3, 2, 1, False),
    (16, 16, 3, 1, 1, True),
    (16, 16, 3, 1, 1, True),
    (16, 32, 2, 2, 0, False),
    (32, 64, 1, 1, 0, False),
    (64, 128, 1, 1, 0, False),
    (128, 256, 1, 1, 0, False),
    (256, 512, 1, 1, 0, False),
    (512, 1024, 1, 1, 0, False),
)


@dataclass(frozen=True)
class ConnectorConfig:
    """Sizes of the connector; the defaults are those of the official checkpoint."""

    window: int = 5
    hidden: int = 1024
    layers: int = 4
    heads: int = 4
    ff: int = 1024
    exp_dim: int = 10
    speech_dim: int = 1024
    max_len: int = 512


def sinusoidal_table(max_len: int, dim: int) -> Tensor:
    """(1, max_len, dim) position table: sin on even dims, cos on odd dims, base 10000."""
    pos = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(max_len, dim)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)
    return table.unsqueeze(0)


class PositionTable(nn.Module):
    """Holds a fixed sinusoidal table as the persistent buffer ``pe`` (1, max_len, dim)."""

    def __init__(self, dim: int, max_len: int) -> None:
        super().__init__()
        self.register_buffer("pe", sinusoidal_table(max_len, dim))

    def forward(self, length: int) -> Tensor:
        """The first ``length`` rows, (1, length, dim) (a view, nothing allocated)."""
        return self.pe[:, :length]


class ConvBlock(nn.Module):
    """Conv1d + BatchNorm1d (``conv_block.0/1``), optional identity residual, ReLU or Tanh."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, padding: int,
                 residual: bool = False, tanh: bool = False) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(nn.Conv1d(cin, cout, kernel, stride, padding), nn.BatchNorm1d(cout))
        self.residual = residual and cin == cout and stride == 1
        self.act: nn.Module = nn.Tanh() if tanh else nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv_block(x)
        if self.residual:
            out = out + x
        return self.act(out)


def code_encoder(exp_dim: int, hidden: int) -> nn.Sequential:
    """The 13-block conv encoder mapping (B, 1, exp_dim) codes to (B, hidden, 1)."""
    blocks = []
    length = exp_dim
    for i, (cin, cout, k, s, p, res) in enumerate(_ENCODER_LAYOUT):
        last = i == len(_ENCODER_LAYOUT) - 1
        blocks.append(ConvBlock(cin, hidden if last else cout, k, s, p, residual=res, tanh=last))
        length = (length + 2 * p - k) // s + 1
    if length != 1:
        raise ValueError(f"the code encoder needs exp_dim=10-like lengths (ends at length {length}, not 1)")
    return nn.Sequential(*blocks)


class SpeakerEncoder(nn.Module):
    """Emotion vector -> one token: Linear, GELU, LayerNorm (``proj``, ``norm``)."""

    def __init__(self, speech_dim: int, hidden: int) -> None:
        super().__init__()
        self.proj = nn.Linear(speech_dim, hidden)
        self.norm = nn.LayerNorm(hidden)
        self.act = nn.GELU()

    def forward(self, e2v: Tensor) -> Tensor:
        """(B, 1, speech_dim) -> (B, 1, hidden)."""
        return self.norm(self.act(self.proj(e2v)))


class Projector(nn.Module):
    """Token -> direction: ``projector.0`` Linear hidden->exp_dim, GELU, ``projector.2`` Linear."""

    def __init__(self, hidden: int, exp_dim: int) -> None:
        super().__init__()
        self.projector = nn.Sequential(nn.Linear(hidden, exp_dim), nn.GELU(), nn.Linear(exp_dim, exp_dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.projector(x)


class FusionTransformer(nn.Module):
    """Adds positions and modality embeddings to the 2T+1 tokens and runs the transformer."""

    def __init__(self, config: ConnectorConfig) -> None:
        super().__init__()
        self.position_r = PositionTable(config.hidden, config.max_len)
        self.position_e = PositionTable(config.hidden, config.max_len)
        self.modality = nn.Embedding(4, config.hidden, padding_idx=0)
        layer = nn.TransformerEncoderLayer(config.hidden, config.heads, config.ff, dropout=0.1,
                                           activation="relu", batch_first=True, norm_first=False)
        self.transformer_encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)

    def forward(self, ref: Tensor, speaker: Tensor, exp: Tensor) -> Tensor:
        """ref (B,T,H), speaker (B,1,H), exp (B,T,H) -> transformer outputs (B, 2T+1, H)."""
        mod = self.modality.weight
        ref = ref + self.position_r(ref.size(1)) + mod[_MOD_REF]
        speaker = speaker + mod[_MOD_SPEAKER]
        exp = exp + self.position_e(exp.size(1)) + mod[_MOD_EXP]
        return self.transformer_encoder(torch.cat((ref, speaker, exp), dim=1))


class Connector(nn.Module):
    """The C-MET expression connector (``Connector_exp``); ``state_dict`` matches the checkpoint."""

    def __init__(self, config: ConnectorConfig = ConnectorConfig()) -> None:
        super().__init__()
        self.config = config
        # Registration order reproduces the checkpoint's key order.
        self.fusion_transformer_encoder = FusionTransformer(config)
        self.exp_encoder = code_encoder(config.exp_dim, config.hidden)
        self.ref_encoder = code_encoder(config.exp_dim, config.hidden)
        self.speaker_encoder = SpeakerEncoder(config.speech_dim, config.hidden)
        self.projector = Projector(config.hidden, config.exp_dim)
        self.Norm = nn.LayerNorm(config.hidden)
        self.eval()

    # ----------------------------------------------------------------- one window

    def _embed_codes(self, encoder: nn.Sequential, codes: Tensor) -> Tensor:
        """(B, T, exp_dim) codes -> (B, T, hidden) embeddings (per-frame encoder, then ``Norm``)."""
        b, t, d = codes.shape
        emb = encoder(codes.reshape(b * t, 1, d)).squeeze(-1)
        return self.Norm(emb).reshape(b, t, -1)

    def speaker_token(self, e2v: Tensor) -> Tensor:
        """(B, 1, speech_dim) emotion vectors -> (B, 1, hidden) tokens."""
        return self.speaker_encoder(e2v)

    def _directions_from_token(self, ref: Tensor, speaker: Tensor, neutral: Tensor) -> Tensor:
        """ref (B,T,10), speaker token (B,1,H), neutral (B,T,10) -> directions (B*T, 10)."""
        t = neutral.size(1)
        fused = self.fusion_transformer_encoder(
            self._embed_codes(self.ref_encoder, ref), speaker, self._embed_codes(self.exp_encoder, neutral))
        out = self.projector(fused[:, t + 1:])
        return out.reshape(-1, out.size(-1))

    def forward(self, ref: Tensor, e2v: Tensor, neutral: Tensor) -> Tensor:
        """ref (B,T,10), e2v (B,1,1024), neutral (B,T,10) -> directions (B*T, 10)."""
        return self._directions_from_token(ref, self.speaker_token(e2v), neutral)

    # ----------------------------------------------------------------- rollout

    def _param(self) -> Tensor:
        return self.Norm.weight

    def _prepare(self, x: Tensor) -> Tensor:
        """Any tensor-like -> tensor on the model's device (floats keep their dtype)."""
        p = self._param()
        x = torch.as_tensor(x, device=p.device)
        return x if x.is_floating_point() else x.to(p.dtype)

    def _speaker_tokens(self, e2v: Tensor, windows: int) -> list[Tensor] | Tensor:
        """One (1,1,H) token for all windows, or a list of one per window."""
        rows = self._prepare(e2v).reshape(-1, self.config.speech_dim)
        if rows.size(0) == 1:
            return self.speaker_token(rows.view(1, 1, -1))
        if rows.size(0) != windows:
            raise ValueError(f"e2v has {rows.size(0)} rows; expected 1 or one per window ({windows})")
        # Each row on its own, so equal rows give exactly the shared-vector result.
        return [self.speaker_token(rows[w:w + 1].view(1, 1, -1)) for w in range(windows)]

    def _first_reference(self, prev_direction: Tensor | None, like: Tensor) -> Tensor:
        t, d = self.config.window, self.config.exp_dim
        if prev_direction is None:
            return like.new_zeros(1, t, d)
        ref = self._prepare(prev_direction)
        if ref.numel() != t * d:
            raise ValueError(f"prev_direction must hold ({t}, {d}) values, got shape {tuple(ref.shape)}")
        return ref.reshape(1, t, d)

    def _pad_to_windows(self, neutral: Tensor) -> Tensor:
        """(N, d) -> (W*T, d): the last partial window repeats its last frame."""
        n, t = neutral.size(0), self.config.window
        missing = -n % t
        if missing == 0:
            return neutral
        return torch.cat((neutral, neutral[-1:].expand(missing, -1)), dim=0)

    @torch.no_grad()
    def directions(self, neutral: Tensor, e2v: Tensor, prev_direction: Tensor | None = None,
                   return_last: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Predicted directions (N, 10) for neutral codes (N, 10); see :meth:`rollout`.

        With ``return_last=True`` also returns the last window's direction (T, 10), the
        reference for a following chunk.
        """
        neutral = self._prepare(neutral)
        if neutral.dim() != 2 or neutral.size(1) != self.config.exp_dim or neutral.size(0) < 1:
            raise ValueError(f"neutral must be (N>=1, {self.config.exp_dim}), got {tuple(neutral.shape)}")
        n, t = neutral.size(0), self.config.window
        padded = self._pad_to_windows(neutral)
        windows = padded.size(0) // t
        tokens = self._speaker_tokens(e2v, windows)
        ref = self._first_reference(prev_direction, neutral)
        chunks = []
        for w in range(windows):
            token = tokens[w] if isinstance(tokens, list) else tokens
            direction = self._directions_from_token(ref, token, padded[w * t:(w + 1) * t].unsqueeze(0))
            chunks.append(direction)
            ref = direction.unsqueeze(0)
        out = torch.cat(chunks, dim=0)[:n]
        return (out, chunks[-1]) if return_last else out

    @torch.no_grad()
    def rollout(self, neutral: Tensor, e2v: Tensor, prev_direction: Tensor | None = None,
                return_last: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """Edited codes ``neutral + direction`` (N, 10) over windows of T frames, in order.

        neutral (N, 10); e2v (1024,) for all windows or (W, 1024) one per window
        (W = ceil(N/T)); prev_direction (T, 10) is the first window's reference (zeros
        if None).  With ``return_last=True`` returns ``(edited, last_direction)``: chunks
        of a multiple of T frames chained this way equal one call over the whole clip.
        """
        neutral = self._prepare(neutral)
        dirs, last = self.directions(neutral, e2v, prev_direction, return_last=True)
        edited = neutral + dirs.to(neutral.dtype)
        return (edited, last) if return_last else edited
