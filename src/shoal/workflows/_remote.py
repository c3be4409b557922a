"""An agent's whole loop on a cluster worker; each model request is asked of the driver.

`remote_agent` runs on the worker: a pydantic-ai Agent over a `RelayModel`, whose every request goes
to the driver as the conversation so far (JSON), the settings and the request parameters. The
driver answers it with its own governed model (replay from the journal, budget, send, check,
journal record) and returns the response as JSON. Tool calls and output validation stay on the
worker. The model's profile travels with the agent, so the worker's Agent prepares requests as the
driver's model would.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pydantic_core
from pydantic_ai.messages import ModelMessage, ModelMessagesTypeAdapter, ModelResponse
from pydantic_ai.models import Model, ModelRequestParameters
from pydantic_ai.profiles import ModelProfile
from pydantic_ai.settings import ModelSettings

from ..cluster import Relay
from ._model import dump_messages, load_response
from ._runner import SessionFailed, make_agent, run_session

__all__ = ["RemoteAgent", "RemoteOutcome", "Turn", "remote_agent", "turn_messages"]


@dataclass(frozen=True, slots=True)
class Turn:
    """One model request an agent on a worker asks the driver for."""

    messages: Any  # the conversation so far, as JSON-ready data
    settings: ModelSettings | None
    params: ModelRequestParameters


def turn_messages(turn: Turn) -> list[ModelMessage]:
    return ModelMessagesTypeAdapter.validate_python(turn.messages)


@dataclass(frozen=True, slots=True)
class RemoteAgent:
    """Everything a worker needs to run one agent() call."""

    text: str
    system: str | None
    schema: Any
    functions: Sequence[Callable[..., Any]]
    previous: dict[str, tuple[str, Any]]
    retries: int
    max_tokens: int
    max_requests: int
    name: str
    profile: ModelProfile
    model_name: str
    provider: str


@dataclass(frozen=True, slots=True)
class RemoteOutcome:
    """The agent's output as JSON-ready data (the driver validates it into its own types), its whole
    conversation, or the reason it failed."""

    output: Any = None
    messages: Any = None
    failure: str | None = None


class RelayModel(Model):
    def __init__(self, spec: RemoteAgent, relay: Relay) -> None:
        super().__init__(profile=spec.profile)
        self._spec = spec
        self._relay = relay

    @property
    def model_name(self) -> str:
        return self._spec.model_name

    @property
    def system(self) -> str:
        return self._spec.provider

    async def request(
        self,
        messages: list[ModelMessage],
        model_settings: ModelSettings | None,
        model_request_parameters: ModelRequestParameters,
    ) -> ModelResponse:
        turn = Turn(dump_messages(messages), model_settings, model_request_parameters)
        return load_response(await self._relay.ask(turn))


async def remote_agent(spec: RemoteAgent, relay: Relay) -> RemoteOutcome:
    """Runs on the worker: the agent's loop, its tools and its output validation."""
    runner = make_agent(
        RelayModel(spec, relay),
        schema=spec.schema,
        system=spec.system,
        tools=spec.functions,
        previous=spec.previous,
        retries=spec.retries,
        max_tokens=spec.max_tokens,
        name=spec.name,
    )
    try:
        output, messages = await run_session(runner, spec.text, spec.max_requests)
    except SessionFailed as failed:
        return RemoteOutcome(failure=failed.reason)
    return RemoteOutcome(pydantic_core.to_jsonable_python(output), dump_messages(messages))
