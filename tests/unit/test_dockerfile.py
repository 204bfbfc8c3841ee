"""The Dockerfile is well formed (no Docker engine here to build it): known instructions,
a pinned slim Python base, every COPY source present and not excluded by
.dockerignore, the package built from the repository, a numeric non-root USER last, and
exec-form ENTRYPOINT/CMD that name a real lbctl command."""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path

import pytest

from lbctl.cli import _parser

ROOT = Path(__file__).resolve().parents[2]
KNOWN = {
    "FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME",
    "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
}  # fmt: skip


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        word, _, rest = line.partition(" ")
        out.append((word, rest.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return out


def ignored(path: str) -> bool:
    patterns = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines() if p.strip()]
    return any(fnmatch.fnmatch(path, p) or path.startswith(p.rstrip("/") + "/") for p in patterns)


def test_every_instruction_is_known_and_upper_case() -> None:
    found = instructions()
    assert found and found[0][0] == "FROM"
    for word, _ in found:
        assert word in KNOWN, word


def test_bases_are_pinned_slim_python_images() -> None:
    bases = [rest.split()[0] for word, rest in instructions() if word == "FROM"]
    assert bases
    for base in bases:
        assert re.fullmatch(r"python:3\.1[1-9]-slim(-[a-z]+)?(@sha256:[0-9a-f]{64})?", base), base


def test_copy_sources_exist_and_reach_the_build_context() -> None:
    stages = {
        rest.split()[-1] for word, rest in instructions() if word == "FROM" and " AS " in rest
    }
    for word, rest in instructions():
        assert word != "ADD", "COPY, not ADD (no URLs or archives)"
        if word != "COPY":
            continue
        parts = rest.split()
        if any(p.startswith("--from=") and p.split("=", 1)[1] in stages for p in parts):
            continue
        for source in [p for p in parts if not p.startswith("--")][:-1]:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
            assert not ignored(source), f"COPY {source}: excluded by .dockerignore"


def test_the_context_leaves_out_local_state() -> None:
    for path in (".venv", ".git", ".lbctl", "tests"):
        assert ignored(path), path


def test_the_package_is_built_and_installed_from_the_repository() -> None:
    runs = " ".join(rest for word, rest in instructions() if word == "RUN")
    assert "pip wheel" in runs and "pip install" in runs
    copied = {p for word, rest in instructions() if word == "COPY" for p in rest.split()[:-1]}
    assert {"pyproject.toml", "lbctl", "providers"} <= copied


def test_it_runs_as_a_numeric_non_root_user() -> None:
    found = instructions()
    last_from = max(i for i, (word, _) in enumerate(found) if word == "FROM")
    users = [rest for word, rest in found[last_from:] if word == "USER"]
    assert users, "the runtime stage sets USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, users[-1]
    assert found.index(("USER", users[-1])) > max(
        i for i, (word, _) in enumerate(found) if word == "RUN"
    ), "nothing runs as root after USER"


@pytest.mark.parametrize("word", ["ENTRYPOINT", "CMD"])
def test_entrypoint_and_cmd_are_exec_form(word: str) -> None:
    (rest,) = [rest for w, rest in instructions() if w == word]
    assert isinstance(json.loads(rest), list)


def test_the_default_command_is_a_real_lbctl_command() -> None:
    (entry,) = [json.loads(rest) for w, rest in instructions() if w == "ENTRYPOINT"]
    (cmd,) = [json.loads(rest) for w, rest in instructions() if w == "CMD"]
    assert entry == ["lbctl"]
    args = _parser().parse_args(cmd)
    assert args.command == cmd[0]
