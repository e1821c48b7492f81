"""Compiled trees: the bundle's LightGBM ranker as native code (lleaves), plain LightGBM fallback.

    load_ranker(ranker.txt, mode="auto")
        ├── "lightgbm"   LambdaRanker: the Booster, as trained
        └── "compiled"   CompiledRanker: the same Booster + the trees compiled by lleaves
            "auto"       compiled when lleaves is installed and compiles the model, else the
                         plain Booster with a `compiled_ranker_unavailable` log line

Why: a model call scores a few hundred candidates with ~100-300 shallow trees; LightGBM's
predict spends most of that call in per-call setup (Python wrapper, C API, thread pool), about
1 ms, while the compiled forest is one native function call (~0.1-0.2 ms). Scores agree with
the Booster's to ~1e-15 (summation order; tests check 1e-6).

Why lleaves rather than treelite + tl2cgen: lleaves compiles through LLVM in-process (llvmlite
wheels carry LLVM), so no C compiler is needed where it runs, and the serving image has none;
tl2cgen generates C and needs gcc at compile time. Measured on a 300-tree 7-leaf model, 300
rows, one thread: LightGBM 1.6 ms, tl2cgen 0.54 ms (its DMatrix wrapper dominates), lleaves
0.20 ms; treelite's interpreter (gtil) 5.7 ms.

Compiling takes ~1-2 s, so the object code is cached on disk keyed by everything it depends on
(sha256 of the model text, lleaves/llvmlite versions, host CPU name and features: the code is
specialised to the CPU). N worker processes loading the same bundle serialise on a file lock:
the first compiles and writes the file atomically, the others load it (~5 ms). Load only
caches you own: the object file is executed as is. The default cache is `.compiled-trees/`
beside the bundles (`list_bundles` ignores dot-directories); when it is not writable the model
is compiled in memory, uncached.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from newsdesk.errors import BundleError, ConfigError, MissingDependency
from newsdesk.models.ranker import LambdaRanker
from newsdesk.monitoring.logging import get_logger

RankerMode = Literal["auto", "compiled", "lightgbm"]
RANKER_MODES: tuple[str, ...] = ("auto", "compiled", "lightgbm")
CACHE_DIR_NAME = ".compiled-trees"
log = get_logger("newsdesk.models.compiled_ranker")


class CompiledRanker(LambdaRanker):
    """A loaded LambdaRanker whose `predict` runs the lleaves-compiled forest.

    The Booster stays loaded (feature importance, `save`, and the reference the tests compare
    against); `predict` has the same contract: x (n, F) -> (n,) float64 scores.
    """

    compiled_: Any = None
    cache_file: Path | None = None
    compiled_here: bool = False  # this process compiled it (False: loaded from the cache)

    def predict(self, x: np.ndarray) -> np.ndarray:
        if len(x) == 0:
            return np.zeros(0)
        # one native call in this thread (lleaves drops the GIL inside it); float32 features
        # widen exactly to the float64 the compiled thresholds compare against
        return np.asarray(self.compiled_.predict(x, n_jobs=1), dtype=np.float64)


def _lleaves() -> Any:
    try:
        import lleaves
    except ImportError as exc:
        raise MissingDependency("'lleaves' is not installed; install it with: "
                                "pip install 'newsdesk[ml]'") from exc
    return lleaves


def cache_key(model_path: Path) -> str:
    """Hex key of the compiled code of `model_path` on this host (see the module docstring)."""
    import llvmlite.binding as llvm

    llvm.initialize_native_target()
    try:
        features = llvm.get_host_cpu_features().flatten()
    except RuntimeError:  # LLVM cannot always detect them; the CPU name still separates hosts
        features = ""
    h = hashlib.sha256(Path(model_path).read_bytes())
    for part in (importlib.metadata.version("lleaves"), importlib.metadata.version("llvmlite"),
                 llvm.get_process_triple(), llvm.get_host_cpu_name(), features):
        h.update(b"\0" + part.encode())
    return h.hexdigest()[:32]


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock (fcntl) held for the block; no-op where fcntl is missing."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    with path.open("a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def compile_model(model_path: Path, cache_dir: Path | None) -> tuple[Any, Path | None, bool]:
    """(compiled lleaves.Model, cache file or None, whether this call compiled it rather than
    loading the cache); raises whatever lleaves raises."""
    lleaves = _lleaves()
    model = lleaves.Model(model_file=str(model_path))
    if cache_dir is None:
        model.compile()
        return model, None, True
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=cache_dir, prefix=".probe-")  # noqa: SIM115
        probe.close()
    except OSError as exc:
        log.warning("compiled_ranker_cache_unwritable", cache_dir=str(cache_dir),
                    error=str(exc))
        model.compile()
        return model, None, True
    key = cache_key(model_path)
    target = cache_dir / f"ranker-{key}.o"
    with _file_lock(cache_dir / f"ranker-{key}.lock"):
        if not target.exists():
            # lleaves writes its object file when compilation finishes: let it write a private
            # name, then publish it atomically so a reader never loads half a file
            tmp = cache_dir / f".ranker-{key}-{os.getpid()}.o"
            tmp.unlink(missing_ok=True)
            model.compile(cache=str(tmp))
            os.replace(tmp, target)
            return model, target, True
    model.compile(cache=str(target))
    return model, target, False


Compiler = Callable[[Path, "Path | None"], "tuple[Any, Path | None, bool]"]


def load_ranker(path: Path, feature_names: Sequence[str], *, mode: str = "auto",
                cache_dir: Path | None = None, compiler: Compiler = compile_model
                ) -> LambdaRanker:
    """The bundle's ranker: plain (`lightgbm`), compiled (`compiled`: errors if it cannot be),
    or compiled with the plain Booster as the fallback (`auto`, logged). `compiler` is
    `compile_model` (tests inject one that fails)."""
    if mode not in RANKER_MODES:
        raise ConfigError(f"ranker: must be one of {list(RANKER_MODES)}, got {mode!r}")
    plain = LambdaRanker.load(path, feature_names)
    if mode == "lightgbm":
        return plain
    try:
        compiled, cache_file, compiled_here = compiler(path, cache_dir)
    except Exception as exc:  # missing package, unsupported objective, LLVM failure, bad cache
        if mode == "compiled":
            if isinstance(exc, MissingDependency):
                raise
            raise BundleError(f"{path.name}: cannot compile the ranker ({exc})") from exc
        log.warning("compiled_ranker_unavailable", model=str(path), error=str(exc),
                    fallback="lightgbm")
        return plain
    if compiled.num_feature() != len(feature_names):
        raise BundleError(f"{path.name}: compiled model has {compiled.num_feature()} features, "
                          f"expected {len(feature_names)}")
    out = CompiledRanker(feature_names)
    out.booster_ = plain.booster_
    out.compiled_ = compiled
    out.cache_file = cache_file
    out.compiled_here = compiled_here
    return out
