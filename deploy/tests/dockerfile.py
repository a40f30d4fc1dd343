"""Read a Dockerfile: its global ARG defaults and its stages' instructions."""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple


class Stage(NamedTuple):
    base: str
    name: str | None
    instructions: list[tuple[str, str]]  # (INSTRUCTION, arguments)


def parse(path: Path) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages of a Dockerfile (continuation lines joined)."""
    text = re.sub(r"\\\n", " ", path.read_text())
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            base, _, name = rest.partition(" AS ")
            stages.append(Stage(base.strip(), name.strip() or None, []))
        elif not stages and instruction == "ARG":
            key, _, default = rest.partition("=")
            args[key] = default
        else:
            stages[-1].instructions.append((instruction, " ".join(rest.split())))
    return args, stages


def expand(value: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], value)


def values(stage: Stage, instruction: str) -> list[str]:
    return [rest for ins, rest in stage.instructions if ins == instruction]


def env_of(stage: Stage) -> dict[str, str]:
    env = {}
    for rest in values(stage, "ENV"):
        env.update(dict(re.findall(r"(\w+)=(\S+)", rest)))
    return env
