"""LLM capabilities behind one provider interface (see provider.py for the contract).

    provider.py     LLMProvider, Message, Completion: the seam every feature uses
    settings.py     LLMSettings (NEWSDESK_LLM_*)
    factory.py      make_provider(): the configured backend behind the operations layer
    structured.py   complete_json(): JSON answers validated by a pydantic model
    fake.py         FakeProvider: a scripted provider for tests of the layers above
"""

from newsdesk.errors import (
    LLMBudgetExceeded,
    LLMCircuitOpen,
    LLMDisabled,
    LLMError,
    LLMInvalidOutput,
    LLMTimeout,
    LLMUnavailable,
)
from newsdesk.llm.factory import make_backend, make_provider
from newsdesk.llm.provider import (
    Completion,
    JsonSchema,
    LLMProvider,
    Message,
    assistant,
    system,
    user,
)
from newsdesk.llm.settings import LLMSettings, load_llm_settings
from newsdesk.llm.structured import complete_json

__all__ = [
    "Completion", "JsonSchema", "LLMBudgetExceeded", "LLMCircuitOpen", "LLMDisabled",
    "LLMError", "LLMInvalidOutput", "LLMProvider", "LLMSettings", "LLMTimeout",
    "LLMUnavailable", "Message", "assistant", "complete_json", "load_llm_settings",
    "make_backend", "make_provider", "system", "user",
]
