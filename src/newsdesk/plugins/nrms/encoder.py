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

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

WEIGHTS_FILE = "weights.npz"
ARRAYS = ("proj", "wq", "wk", "wv", "wa", "ba", "qa")


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
    # P [Wq | Wk | Wv] (dim, 3d): one product per reader on the request path (encode_one)
    _qkv: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def dim(self) -> int:
        return int(self.proj.shape[0])

    def save(self, directory: Path) -> None:
        arrays = {name: getattr(self, name) for name in ARRAYS}
        np.savez(directory / WEIGHTS_FILE, heads=np.array(self.heads), **arrays)

    @classmethod
    def load(cls, directory: Path) -> NRMSWeights:
        with np.load(directory / WEIGHTS_FILE, allow_pickle=False) as z:
            arrays = {name: np.ascontiguousarray(z[name], dtype=np.float32) for name in ARRAYS}
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

    def encode_one(self, clicked: np.ndarray) -> np.ndarray:
        """u (d,) of one reader from their n >= 1 clicked articles' embeddings (n, dim): the
        request path. The same arithmetic as `encode` in fewer, larger numpy calls (the
        projection folded into the attention's Q, K, V: float32 rounding differs slightly,
        tested within 1e-4)."""
        qkv_w = self._qkv
        if qkv_w is None:  # a benign race: two threads build the same product
            qkv_w = self._qkv = np.ascontiguousarray(
                self.proj @ np.hstack([self.wq, self.wk, self.wv]), dtype=np.float32)
        n = len(clicked)
        d = self.wq.shape[0]
        heads, dh = self.heads, d // self.heads
        qkv = clicked @ qkv_w  # (n, 3d)
        q = qkv[:, :d].reshape(n, heads, dh).transpose(1, 0, 2)  # (H, n, dh)
        k = qkv[:, d:2 * d].reshape(n, heads, dh).transpose(1, 2, 0)  # (H, dh, n)
        v = qkv[:, 2 * d:].reshape(n, heads, dh).transpose(1, 0, 2)
        att = q @ k
        att *= np.float32(1.0 / np.sqrt(dh))
        att -= att.max(axis=-1, keepdims=True)
        np.exp(att, out=att)
        att /= att.sum(axis=-1, keepdims=True)
        o = (att @ v).transpose(1, 0, 2).reshape(n, d)
        e = np.tanh(o @ self.wa + self.ba) @ self.qa
        e = np.exp(e - e.max())
        return (e / e.sum()) @ o

    def reader_query(self, embeddings: np.ndarray, clicks: np.ndarray) -> np.ndarray | None:
        """`P u` (dim,) of one reader: clicks (L,) catalog indices newest first, -1 = pad;
        None without a click. Score of article i: embeddings[i] @ the result."""
        valid = clicks >= 0
        if not valid.any():
            return None
        return self.proj @ self.encode_one(embeddings[clicks[valid]])

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
