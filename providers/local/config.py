"""What the config file can say about the local provider."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RoutineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    command: str = Field(min_length=1, description="Shell command; gets the message on stdin and as $ROUTINE_MESSAGE.")
    description: str = ""
    timeout_s: float = Field(60, gt=0)
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict)


class LauncherConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    command: str = Field(min_length=1, description="Shell command of a long-lived service.")
    description: str = ""
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict)


class LocalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    routines: dict[str, RoutineConfig] = Field(default_factory=dict)
    launchers: dict[str, LauncherConfig] = Field(default_factory=dict)
    max_timeout_s: float = Field(3600, gt=0, description="Largest timeout_s execRun accepts.")
    output_cap_bytes: int = Field(16_384, ge=256, description="Per stream, how much output a tool result holds.")
    keep_processes_on_exit: bool = Field(False, description="Leave running sessions alive when the server stops.")
