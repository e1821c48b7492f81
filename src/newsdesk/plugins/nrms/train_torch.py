"""Training the NRMS user encoder with PyTorch on CPU (imported only by `NRMSPlugin.fit`).

Samples: every click of a logged impression whose reader had at least one earlier click,
with `negatives` shown-but-not-clicked items of the same impression (drawn with replacement
when the slate has fewer); the loss is the cross-entropy of the click among the 1 + K scores
(NRMS's sampled softmax). The content embeddings are fixed inputs; the projection, the
attention and the pooling are learned. Deterministic for a seed (one torch thread).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from newsdesk.deps import require
from newsdesk.plugins.nrms.encoder import NRMSWeights


@dataclass
class Samples:
    """history (S, L) catalog indices (-1 pad), candidates (S, 1 + K): the click first."""

    history: np.ndarray
    candidates: np.ndarray


def build_samples(click_idx: np.ndarray, row_article: np.ndarray, labels: np.ndarray,
                  groups: np.ndarray, negatives: int, rng: np.random.Generator) -> Samples:
    """Samples of the impressions (rows grouped, `groups` rows per impression)."""
    starts = np.concatenate([[0], np.cumsum(groups)[:-1]]).astype(np.int64)
    hist, cands = [], []
    for q, (s, g) in enumerate(zip(starts.tolist(), groups.tolist(), strict=True)):
        if not (click_idx[q] >= 0).any():
            continue
        arts = row_article[s:s + g]
        lab = labels[s:s + g] > 0
        pos = arts[lab & (arts >= 0)]
        neg = arts[~lab & (arts >= 0)]
        if len(pos) == 0 or len(neg) == 0:
            continue
        if len(neg) >= negatives:  # distinct negatives per click
            pick = rng.random((len(pos), len(neg))).argsort(axis=1)[:, :negatives]
        else:
            pick = rng.integers(0, len(neg), (len(pos), negatives))
        draw = neg[pick]
        cands.append(np.concatenate([pos[:, None], draw], axis=1))
        hist.append(np.repeat(click_idx[q][None, :], len(pos), axis=0))
    if not hist:
        width = click_idx.shape[1] if click_idx.ndim == 2 else 0
        return Samples(np.zeros((0, width), np.int64), np.zeros((0, negatives + 1), np.int64))
    return Samples(np.concatenate(hist).astype(np.int64), np.concatenate(cands).astype(np.int64))


def train_encoder(embeddings: np.ndarray, samples: Samples, *, dim: int, heads: int,
                  attention_dim: int, epochs: int, batch_size: int, learning_rate: float,
                  dropout: float, seed: int, max_seconds: float
                  ) -> tuple[NRMSWeights, dict[str, float]]:
    """Fit the encoder; returns the numpy weights and training figures (loss per epoch,
    samples, seconds). Stops after `max_seconds` at an epoch's end (the figures say so)."""
    torch = require("torch", "ml")
    nn = torch.nn
    torch.manual_seed(seed)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # deterministic sums, and kind to a shared machine
    try:
        emb = torch.from_numpy(np.ascontiguousarray(embeddings, dtype=np.float32))
        model = _Module(nn, torch, emb.shape[1], dim, heads, attention_dim, dropout)
        opt = torch.optim.Adam(model.parameters(), lr=learning_rate)
        gen = np.random.default_rng(seed)
        n = len(samples.history)
        figures: dict[str, float] = {"samples": float(n)}
        began = time.perf_counter()
        for epoch in range(epochs):
            order = gen.permutation(n)
            total, batches = 0.0, 0
            model.train()
            for lo in range(0, n, batch_size):
                b = order[lo:lo + batch_size]
                hist = torch.from_numpy(samples.history[b])
                cand = torch.from_numpy(samples.candidates[b])
                mask = hist >= 0
                clicked = emb[hist.clamp(min=0)]
                u = model.user(clicked, mask)  # (B, d)
                a = model.project(emb[cand])  # (B, 1 + K, d)
                logits = torch.einsum("bd,bkd->bk", u, a)
                loss = nn.functional.cross_entropy(logits, torch.zeros(len(b), dtype=torch.long))
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += loss.item()
                batches += 1
            figures[f"loss_epoch_{epoch}"] = total / max(batches, 1)
            if time.perf_counter() - began > max_seconds:
                figures["stopped_after_epochs"] = float(epoch + 1)
                break
        figures["seconds"] = time.perf_counter() - began
        figures["chance_loss"] = math.log(samples.candidates.shape[1])
        return model.export(heads), figures
    finally:
        torch.set_num_threads(threads)


def _Module(nn, torch, in_dim: int, dim: int, heads: int, attention_dim: int,  # noqa: ANN001, N802
            dropout: float):  # noqa: ANN202
    """The torch twin of `NRMSWeights` (built inside a function: torch is imported lazily)."""

    class NRMS(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.proj = nn.Linear(in_dim, dim, bias=False)
            self.wq = nn.Linear(dim, dim, bias=False)
            self.wk = nn.Linear(dim, dim, bias=False)
            self.wv = nn.Linear(dim, dim, bias=False)
            self.wa = nn.Linear(dim, attention_dim)
            self.qa = nn.Parameter(torch.randn(attention_dim) * 0.1)
            self.drop = nn.Dropout(dropout)
            self.heads = heads

        def project(self, e):  # noqa: ANN001, ANN202
            return self.proj(e)

        def user(self, clicked, mask):  # noqa: ANN001, ANN202
            h = self.drop(self.proj(clicked))  # (B, L, d)
            b, n, d = h.shape
            dh = d // self.heads

            def split(x):  # noqa: ANN001, ANN202
                return x.view(b, n, self.heads, dh).transpose(1, 2)

            q, k, v = split(self.wq(h)), split(self.wk(h)), split(self.wv(h))
            logits = q @ k.transpose(-1, -2) / math.sqrt(dh)
            logits = logits.masked_fill(~mask[:, None, None, :], -1e9)
            o = (torch.softmax(logits, dim=-1) @ v).transpose(1, 2).reshape(b, n, d)
            o = self.drop(o)
            e = torch.tanh(self.wa(o)) @ self.qa
            e = e.masked_fill(~mask, -1e9)
            alpha = torch.softmax(e, dim=-1) * mask
            return torch.einsum("bl,bld->bd", alpha, o)

        def export(self, heads: int) -> NRMSWeights:
            def t(x):  # noqa: ANN001, ANN202
                return np.ascontiguousarray(x.detach().numpy().astype(np.float32))

            return NRMSWeights(proj=t(self.proj.weight.T), wq=t(self.wq.weight.T),
                               wk=t(self.wk.weight.T), wv=t(self.wv.weight.T),
                               wa=t(self.wa.weight.T), ba=t(self.wa.bias), qa=t(self.qa),
                               heads=heads)

    return NRMS()
