"""The NRMS-style user encoder in plain numpy: what serving runs (no torch).

    article vector   a_i = E_i P                       E: content embedding (dim,), P (dim, d)
    reader           h = [a_c1 .. a_cL]                 the reader's newest clicks, (L, d)
    self-attention   o = concat_heads softmax(Q K^T / sqrt(d_head)) V,  Q, K, V = h Wq, h Wk, h Wv
    pooling          alpha = softmax(tanh(o Wa + ba) qa),  u = sum_l alpha_l o_l      (d,)
    score            s(reader, i) = u . a_i = E_i . (P u)

(Wu et al., "Neural News Recommendation with Multi-Head Self-Attention", EMNLP 2019, with the
title encoder replaced by the existing content embedding and a learned projection P.)

The score folds the projection into the reader: `P u` is one (dim,) vector per request, so a
candidate costs one dot product with its content embedding, the same as `content_sim`. Padding
clicks (-1) are masked out of both softmaxes; a reader without a click has no vector (None).
`NRMSWeights.encode` is tested equal to the torch module it was exported from.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

WEIGHTS_FILE = "weights.npz"


@dataclass
class NRMSWeights:
    """float32 arrays: proj (dim, d), wq / wk / wv (d, d), wa (d, a), ba (a,), qa (a,)."""

    proj: np.ndarray
    wq: np.ndarray
    wk: np.ndarray
    wv: np.ndarray
    wa: np.ndarray
    ba: np.ndarray
    qa: np.ndarray
    heads: int

    @property
    def dim(self) -> int:
        return int(self.proj.shape[0])

    def save(self, directory: Path) -> None:
        arrays = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "heads"}
        np.savez(directory / WEIGHTS_FILE, heads=np.array(self.heads), **arrays)

    @classmethod
    def load(cls, directory: Path) -> NRMSWeights:
        with np.load(directory / WEIGHTS_FILE, allow_pickle=False) as z:
            arrays = {f.name: np.ascontiguousarray(z[f.name], dtype=np.float32)
                      for f in fields(cls) if f.name != "heads"}
            heads = int(z["heads"])
        w = cls(heads=heads, **arrays)
        d = w.proj.shape[1]
        if d % heads or w.wq.shape != (d, d) or w.wa.shape[0] != d:
            raise ValueError(f"{WEIGHTS_FILE}: inconsistent shapes (proj {w.proj.shape}, "
                             f"wq {w.wq.shape}, wa {w.wa.shape}, heads {heads})")
        return w

    def encode(self, clicked: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Reader vectors u (B, d) from clicked-article content embeddings (B, L, dim) and
        their validity mask (B, L) bool; rows without a valid click are zeros."""
        b, n, _ = clicked.shape
        h = (clicked.reshape(b * n, -1) @ self.proj).reshape(b, n, -1)
        return self._encode_projected(h, mask)

    def _encode_projected(self, h: np.ndarray, mask: np.ndarray) -> np.ndarray:
        b, n, d = h.shape
        k_heads, dh = self.heads, d // self.heads

        def split(x: np.ndarray) -> np.ndarray:  # (B, L, d) -> (B, H, L, dh)
            return x.reshape(b, n, k_heads, dh).transpose(0, 2, 1, 3)

        q, k, v = split(h @ self.wq), split(h @ self.wk), split(h @ self.wv)
        logits = q @ k.transpose(0, 1, 3, 2) / np.float32(np.sqrt(dh))  # (B, H, L, L)
        logits = np.where(mask[:, None, None, :], logits, np.float32(-1e9))
        att = _softmax(logits)
        o = (att @ v).transpose(0, 2, 1, 3).reshape(b, n, d)  # (B, L, d)
        e = np.tanh(o @ self.wa + self.ba) @ self.qa  # (B, L)
        e = np.where(mask, e, np.float32(-1e9))
        alpha = _softmax(e) * mask
        u = np.einsum("bl,bld->bd", alpha, o)
        return np.where(mask.any(axis=1, keepdims=True), u, 0.0).astype(np.float32)

    def reader_query(self, embeddings: np.ndarray, clicks: np.ndarray) -> np.ndarray | None:
        """`P u` (dim,) of one reader: clicks (L,) catalog indices newest first, -1 = pad;
        None without a click. Score of article i: embeddings[i] @ the result."""
        valid = clicks >= 0
        if not valid.any():
            return None
        c = clicks[valid]
        u = self.encode(embeddings[c][None, :, :], np.ones((1, len(c)), dtype=bool))[0]
        return self.proj @ u

    def reader_queries(self, embeddings: np.ndarray, clicks: np.ndarray,
                       chunk: int = 1024) -> np.ndarray:
        """`P u` (Q, dim) of many readers (Q, L); zeros without a click."""
        out = np.zeros((len(clicks), self.dim), np.float32)
        for lo in range(0, len(clicks), chunk):
            c = clicks[lo:lo + chunk]
            mask = c >= 0
            emb = embeddings[np.where(mask, c, 0)]
            out[lo:lo + chunk] = self.encode(emb, mask) @ self.proj.T
        return out


def _softmax(x: np.ndarray) -> np.ndarray:
    z = np.exp(x - x.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)
