"""Ray sessions as tool results: what a node's local runtime answered, naming the node it runs on and saying how to
reach the session again through this provider."""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field

from providers import errors
from providers.models import ExecResult, InputSent, SessionSummary, StopResult
from providers.ray.cluster import AgentRef, TokenRefused, Unreachable
from providers.ray.records import RaySession
from providers.values import iso_time

PROVIDER = "ray"
# Errors a node's runtime may send back, by name (their provider becomes ours).
ERRORS: dict[str, type[errors.ProviderError]] = {
    cls.__name__: cls
    for cls in (
        errors.ProviderError,
        errors.InvalidInput,
        errors.NotFound,
        errors.Conflict,
        errors.Unavailable,
        errors.Timeout,
        errors.Busy,
        errors.Unsupported,
    )
}


class RayExecResult(ExecResult):
    node_id: str | None = Field(None, description="The Ray node it runs on.")
    node_ip: str | None = None
    workspace: str | None = None


class RayStopResult(StopResult):
    node_id: str | None = None
    node_ip: str | None = None


def on_ray(text: str | None) -> str | None:
    """A node runtime's message as this provider's: the follow-up calls name provider=ray, settings are [ray.node]'s,
    and the local provider's output resource (not served for ray) is left out."""
    if text is None:
        return None
    text = re.sub(r", or all of it at local://sessions/\S+", "", text)
    text = re.sub(r"\b(getSession|stopSession|sendInput) session_id=", r"\1 provider=ray session_id=", text)
    text = text.replace("end it with stopSession.", "end it with stopSession provider=ray.")
    text = re.sub(r"\blocal\.(?=[a-z_]+)", "ray.node.", text)
    return text.replace("RUNTIMES_MCP_DATA_DIR", "[ray] node_data_dir (on that node)")


def provider_error(error: dict[str, Any], node: str) -> errors.ProviderError:
    """An error a node's runtime sent back (kind, message, hint), as ours."""
    cls = ERRORS.get(str(error.get("kind")), errors.ProviderError)
    message = on_ray(str(error.get("message"))) or ""
    hint = on_ray(error.get("hint"))
    return cls(PROVIDER, f"{message} (on node {node})", hint=hint)


def exec_result(answer: dict[str, Any], session: RaySession) -> RayExecResult:
    result = ExecResult.model_validate(answer)
    fields = result.model_dump() | {"provider": PROVIDER, "message": on_ray(result.message)}
    return RayExecResult(**fields, node_id=session.node_id, node_ip=session.node_ip, workspace=session.workspace)


def from_record(session: RaySession, message: str) -> RayExecResult:
    """A session whose node cannot be asked (it has left the cluster): what the shared record says."""
    duration = int((session.ended_at - session.started_at) * 1000) if session.ended_at else None
    return RayExecResult(
        provider=PROVIDER,
        session_id=session.id,
        state=session.state,
        exit_code=session.exit_code,
        duration_ms=duration,
        message=message,
        node_id=session.node_id,
        node_ip=session.node_ip,
        workspace=session.workspace,
    )


def stop_result(answer: dict[str, Any], session: RaySession) -> RayStopResult:
    result = StopResult.model_validate(answer)
    fields = result.model_dump() | {"provider": PROVIDER, "message": on_ray(result.message) or ""}
    return RayStopResult(**fields, node_id=session.node_id, node_ip=session.node_ip)


def input_sent(answer: dict[str, Any]) -> InputSent:
    result = InputSent.model_validate(answer)
    return result.model_copy(update={"provider": PROVIDER, "message": on_ray(result.message)})


def summary(session: RaySession) -> SessionSummary:
    raw = {
        "node_id": session.node_id,
        "node_ip": session.node_ip,
        "workspace": session.workspace,
        "exit_code": session.exit_code,
        "end_reason": session.end_reason,
        "ended_at": iso_time(session.ended_at) if session.ended_at else None,
        "message": session.message,
    }
    raw = {key: value for key, value in raw.items() if value is not None}  # absent, not null: fewer tokens
    return SessionSummary(
        id=session.id, status=session.state, started_at=iso_time(session.started_at), command=session.command, raw=raw
    )


def node_name(node_id: str, node_ip: str) -> str:
    return f"{node_id[:12]} ({node_ip})"


def workspace_node_left(workspace: str, home: tuple[str, str]) -> errors.Unavailable:
    return errors.Unavailable(
        PROVIDER,
        f"workspace {workspace!r} lives on node {node_name(*home)}, which has left the cluster",
        hint="Use another workspace name; what was in this one stayed on that node.",
    )


def agent_of(session: RaySession) -> AgentRef:
    """The agent that runs a session: the one its record names."""
    return AgentRef(session.namespace, session.agent, session.node_id)


def cluster_away(exc: Unreachable) -> errors.Unavailable:
    """The cluster cannot be reached (or refused us), as this provider's error."""
    if isinstance(exc, TokenRefused):
        return errors.Unavailable(
            PROVIDER,
            f"the Ray cluster did not let this server in: {exc}",
            hint="Set RUNTIMES_MCP_RAY_TOKEN (or RAY_AUTH_TOKEN) to the token the cluster was started with, and "
            "restart the server.",
        )
    return errors.Unavailable(
        PROVIDER,
        f"the Ray cluster did not answer ({exc})",
        hint="Check that the cluster is up and RUNTIMES_MCP_RAY_ADDRESS (and its token) are right; retry.",
    )
