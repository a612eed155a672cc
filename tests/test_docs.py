"""The README stays true to the code: every config field documented, CI runs its test command."""

from __future__ import annotations

import re
import subprocess
import typing
from pathlib import Path

from pydantic import BaseModel

from streamal.config import Settings

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()


def leaf_paths(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Dotted paths of every leaf field (fields of each variant of a union of models)."""
    paths: set[str] = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        members = [  # a tagged union's members are Annotated[model, Tag(...)]
            typing.get_args(a)[0] if typing.get_origin(a) is typing.Annotated else a
            for a in (typing.get_args(annotation) or (annotation,))
        ]
        variants = [a for a in members if isinstance(a, type) and issubclass(a, BaseModel)]
        if not variants:
            paths.add(prefix + name)
        for variant in variants:
            paths |= leaf_paths(variant, f"{prefix}{name}.")
    return paths


def test_every_config_field_is_in_the_reference() -> None:
    missing = sorted(p for p in leaf_paths(Settings) if f"`{p}`" not in README)
    assert not missing, f"README's configuration reference lacks {missing}"


def test_ci_runs_the_readme_test_command() -> None:
    blocks = re.findall(r"```sh\n(.*?)```", README, re.S)
    test_command = blocks[1].strip()  # (b) of the quickstart
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in ci


OUTSIDE_REFERENCES = re.compile(
    r"/work/|/home/|/Users/|/tmp/[\w{]|\.\./shared|DESIGN(\.md| section)|this \d+-core machine"
)


def test_no_file_refers_to_a_machine_or_a_document_outside_the_repository() -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
    ).stdout.decode()
    found = []
    for name in filter(None, listed.split("\0")):
        path = ROOT / name
        if path == Path(__file__) or not path.is_file():
            continue
        text = path.read_bytes().decode("utf-8", errors="replace")
        found += [
            f"{name}:{number}: {line.strip()}"
            for number, line in enumerate(text.splitlines(), 1)
            if OUTSIDE_REFERENCES.search(line)
        ]
    assert not found, "\n".join(found)
