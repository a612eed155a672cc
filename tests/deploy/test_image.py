"""The Dockerfile (read, not built: no Docker engine here) and the demo producer it runs.

The Dockerfile must be multi-stage with a CPU base by default and a CUDA base by build argument,
run as a non-root user with ``streamal`` as entrypoint, and copy only files that exist and that
.dockerignore lets into the build context.
"""

from __future__ import annotations

import fnmatch
import json
import re
import subprocess
import sys
from pathlib import Path

from streamal.config import Settings
from streamal.messages import Sample, decode
from streamal.stream.config import ServeConfig
from streamal.training.config import TrainConfig
from tests.conftest import settings_for
from tests.deploy import DEPLOY, ROOT
from tests.helpers import read_back, with_fresh_topics, write_config

DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def stages() -> dict[str, list[tuple[str, str]]]:
    """Each stage's instructions by stage name (global ARGs under ``""``)."""
    found: dict[str, list[tuple[str, str]]] = {"": []}
    current = ""
    for word, rest in instructions():
        if word == "FROM":
            current = rest.split(" AS ")[-1].strip() if " AS " in rest else rest
            found[current] = [(word, rest)]
        else:
            found[current].append((word, rest))
    return found


def args(stage: list[tuple[str, str]]) -> dict[str, str]:
    return dict(rest.split("=", 1) for word, rest in stage if word == "ARG" and "=" in rest)


def ignored(path: str) -> bool:
    """Whether .dockerignore keeps ``path`` out of the build context (last match wins)."""
    result = False
    for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/").replace("**/", "")
        parts = Path(path).parts
        if any(fnmatch.fnmatch("/".join(parts[: i + 1]), pattern) for i in range(len(parts))) or (
            fnmatch.fnmatch(Path(path).name, pattern) and "/" not in pattern
        ):
            result = not negated
    return result


def test_multi_stage_with_a_cpu_base_by_default_and_a_cuda_base_by_argument() -> None:
    found = stages()
    assert args(found[""])["VARIANT"] == "cpu"
    assert {"base-cpu", "base-cuda", "base", "build", "runtime"} <= set(found)
    assert found["base"][0] == ("FROM", "base-${VARIANT} AS base")
    cpu_from = found["base-cpu"][0][1]
    cuda_from = found["base-cuda"][0][1]
    assert "PYTHON_IMAGE" in cpu_from and "CUDA_IMAGE" in cuda_from
    assert args(found[""])["CUDA_IMAGE"].startswith("nvidia/cuda:")
    cpu_env = " ".join(rest for word, rest in found["base-cpu"] if word == "ENV")
    cuda_env = " ".join(rest for word, rest in found["base-cuda"] if word == "ENV")
    assert "whl/cpu" in cpu_env and re.search(r"whl/cu\d+", cuda_env)
    assert any("TORCH_INDEX_URL" in rest for word, rest in found["build"] if word == "RUN")
    assert list(found)[-1] == "runtime"  # the default target


def test_the_runtime_stage_is_non_root_with_streamal_as_entrypoint() -> None:
    runtime = stages()["runtime"]
    assert runtime[0] == ("FROM", "base AS runtime")
    [user] = [rest for word, rest in runtime if word == "USER"]
    assert user.split(":")[0] not in {"0", "root"}
    [entrypoint] = [rest for word, rest in runtime if word == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["streamal"]
    copies = [rest for word, rest in runtime if word == "COPY"]
    assert any(c.startswith("--from=build /opt/streamal") for c in copies)
    exposed = {int(p) for word, rest in runtime if word == "EXPOSE" for p in rest.split()}
    for config in (ServeConfig(), TrainConfig()):
        assert int(config.metrics_address.rpartition(":")[2]) in exposed
    env = " ".join(rest for word, rest in runtime if word == "ENV")
    assert "STREAMAL_CONFIG=/etc/streamal/kafka.yaml" in env


def test_every_copied_path_exists_and_is_in_the_build_context() -> None:
    for stage in stages().values():
        for word, rest in stage:
            if word != "COPY" or rest.startswith("--from"):
                continue
            for source in rest.split()[:-1]:
                assert (ROOT / source).exists(), source
                assert not ignored(source.rstrip("/")), f"{source} is excluded by .dockerignore"
    for kept_out in (".venv", ".git", "tests", ".streamal/log.sqlite", "streamal/__pycache__"):
        assert ignored(kept_out), kept_out
    assert not ignored("streamal/tools/annotate.py") and not ignored("configs/kafka.yaml")


def test_the_demo_producer_produces_valid_samples_of_the_configured_shape(
    tmp_path: Path,
) -> None:
    settings = with_fresh_topics(settings_for("local", tmp_path=tmp_path))
    model = settings.model.model_copy(update={"n_features": 4, "classes": ["a", "b", "c"]})
    settings = Settings(**{**settings.model_dump(), "model": model.model_dump()})
    config = write_config(settings, tmp_path / "c.yaml")

    done = subprocess.run(
        [sys.executable, str(DEPLOY / "demo" / "producer.py"), "--config", config,
         "--count", "25", "--rate", "5000", "--drift-every", "10", "--answer", "--delay", "0"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    assert "produced 25 samples" in done.stderr
    samples = [decode(Sample, e.value) for e in read_back(settings, settings.topics.samples, 25)]
    assert len(samples) == 25 == len({s.id for s in samples})
    assert all(s.features is not None and len(s.features) == 4 for s in samples)
    assert all(s.ts is not None for s in samples)
