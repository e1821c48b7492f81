"""Deterministic, sticky assignment of units (users) to experiment variants.

Three independent hashes of the unit id, each keyed by a different salt (BLAKE2b, 64 bits):

* holdout hash (holdout salt): units below `holdout.fraction` enter no experiment;
* layer hash (layer name): picks one of 10,000 buckets of the layer; an experiment owns the
  contiguous bucket slice [traffic_start, traffic_start + traffic), so experiments of one layer
  are mutually exclusive while different layers, keyed differently, are independent;
* variant hash (experiment salt): picks the variant by cumulative weight, independent of the
  bucket so that a traffic change does not reshuffle who sees which variant.

Experiments with a staged rollout instead compare a rollout hash to the current treatment
fraction read from a `FractionSource` on every call: a unit in treatment at 5 % stays in
treatment at 25 % (the threshold only grows), and a kill switch (fraction 0) applies to the
next request.

Cost: one BLAKE2b per hash, ~0.5 us each; `benchmarks/experiments.py` measures `assign`.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from newsdesk.experiments.config import ExperimentConfig, ExperimentSuite, Holdout, Status

N_BUCKETS = 10_000
HOLDOUT = "holdout"
_SCALE = float(2**64)


class Assignment(NamedTuple):
    """Where a unit landed: experiment, variant, layer bucket (0..9999), layer name.

    `pipeline` / `bundle` repeat what the variant serves so callers need not look it up.
    (A NamedTuple: immutable and several times cheaper to build than a frozen dataclass.)
    """

    experiment_id: str
    variant: str
    bucket: int
    layer: str
    pipeline: str | None = None
    bundle: str | None = None


class FractionSource(Protocol):
    """Anything that knows the live treatment fraction of a staged rollout."""

    def fraction(self, experiment_id: str) -> float | None:
        """Current treatment fraction in [0, 1], or None if the experiment has no rollout."""
        ...


def _key(salt: str) -> bytes:
    # BLAKE2b keys are at most 64 bytes; a SHA-256 of the salt fits any salt length.
    return hashlib.sha256(salt.encode()).digest()


def unit_hash(unit_id: str, salt: str) -> float:
    """Uniform number in [0, 1) from (unit id, salt); the same inputs give the same number."""
    return _hash(unit_id.encode(), _key(salt))


def _hash(unit: bytes, key: bytes) -> float:
    digest = hashlib.blake2b(unit, digest_size=8, key=key).digest()
    return int.from_bytes(digest, "little") / _SCALE


@dataclass(frozen=True, slots=True)
class _Slot:
    """One experiment's bucket range in its layer, with everything `assign` needs precomputed
    (thresholds as 64-bit integers so the hot path does no float maths)."""

    lo: int
    hi: int
    exp_id: str
    key: bytes
    rollout_key: bytes
    cum: tuple[int, ...]  # cumulative variant weights scaled to 2**64
    variants: tuple[tuple[str, str | None, str | None], ...]  # (name, pipeline, bundle)
    rollout: tuple[int, int] | None  # (treatment index, control index) when staged


class Assigner:
    """Maps (unit id, surface) to the list of assignments, one per layer the unit falls in."""

    def __init__(
        self,
        experiments: Iterable[ExperimentConfig],
        holdout: Holdout | None = None,
        rollouts: FractionSource | None = None,
    ) -> None:
        self.experiments = [e for e in experiments if e.status is Status.RUNNING]
        self.holdout = holdout or Holdout()
        self.rollouts = rollouts
        self._holdout_key = _key(self.holdout.salt)
        self._holdout_cut = int(self.holdout.fraction * _SCALE)
        self._layers: dict[str, bytes] = {}
        self._slots: dict[str, list[_Slot]] = {}
        for e in self.experiments:
            self._layers.setdefault(e.layer, _key(f"layer:{e.layer}"))
            cum, acc = [], 0.0
            for w in e.weights():
                acc += w
                cum.append(int(acc * _SCALE))
            cum[-1] = 2**64  # guard against float round-off leaving a gap at the top
            names = [v.name for v in e.variants]
            rollout = None
            if e.rollout is not None:
                rollout = (names.index(e.rollout.treatment), names.index(e.rollout.control))
            lo = round(e.traffic_start * N_BUCKETS)
            slot = _Slot(lo, lo + round(e.traffic * N_BUCKETS), e.id, _key(e.effective_salt),
                         _key(f"rollout:{e.effective_salt}"), tuple(cum),
                         tuple((v.name, v.pipeline, v.bundle) for v in e.variants), rollout)
            self._slots.setdefault(e.layer, []).append(slot)
        for slots in self._slots.values():
            slots.sort(key=lambda s: s.lo)
        self._surfaces = {e.id: set(e.surfaces) for e in self.experiments}
        self._by_surface: dict[str, list[tuple[bytes, str, list[_Slot], list[int]]]] = {}

    @classmethod
    def from_config(
        cls, configs: ExperimentSuite | Iterable[ExperimentConfig],
        rollouts: FractionSource | None = None,
    ) -> Assigner:
        """Build from a suite (experiments + holdout) or a plain list of experiments."""
        if isinstance(configs, ExperimentSuite):
            return cls(configs.experiments, configs.holdout, rollouts)
        return cls(configs, None, rollouts)

    def _plan(self, surface: str) -> list[tuple[bytes, str, list[_Slot], list[int]]]:
        plan = self._by_surface.get(surface)
        if plan is None:
            plan = []
            for layer, slots in self._slots.items():
                live = [s for s in slots
                        if not self._surfaces[s.exp_id] or surface in self._surfaces[s.exp_id]]
                if live:
                    plan.append((self._layers[layer], layer, live, [s.lo for s in live]))
            self._by_surface[surface] = plan
        return plan

    def assign(self, unit_id: str, surface: str = "front_page") -> list[Assignment]:
        """Assignments of `unit_id` on `surface`; [] if in no experiment, [holdout] if held out."""
        unit = unit_id.encode()
        blake2b = hashlib.blake2b
        if self._holdout_cut:
            h = int.from_bytes(blake2b(unit, digest_size=8, key=self._holdout_key).digest(),
                               "little")
            if h < self._holdout_cut:
                return [Assignment(HOLDOUT, HOLDOUT, h * N_BUCKETS >> 64, HOLDOUT)]
        out: list[Assignment] = []
        for layer_key, layer, slots, los in self._plan(surface):
            h = int.from_bytes(blake2b(unit, digest_size=8, key=layer_key).digest(), "little")
            bucket = h * N_BUCKETS >> 64
            i = bisect_right(los, bucket) - 1
            if i < 0 or bucket >= slots[i].hi:
                continue
            slot = slots[i]
            k = -1
            if slot.rollout is not None and self.rollouts is not None:
                frac = self.rollouts.fraction(slot.exp_id)
                if frac is not None:
                    h = int.from_bytes(
                        blake2b(unit, digest_size=8, key=slot.rollout_key).digest(), "little")
                    k = slot.rollout[0] if h < frac * _SCALE else slot.rollout[1]
            if k < 0:
                h = int.from_bytes(blake2b(unit, digest_size=8, key=slot.key).digest(), "little")
                k = bisect_right(slot.cum, h)
            name, pipeline, bundle = slot.variants[k]
            out.append(Assignment(slot.exp_id, name, bucket, layer, pipeline, bundle))
        return out
