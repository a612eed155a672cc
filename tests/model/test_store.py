"""The model store: atomic versions, readable by the folder's readers, one-line write errors,
refusal of anything foreign."""

from __future__ import annotations

import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch

from streamal.errors import ModelError
from streamal.model import MLP, ModelConfig, ModelLoader, ModelStore

CLASSES = ["a", "b", "c"]

DEFAULT = ModelConfig()  # the default model's parts


def mlp(hidden: int = 8) -> MLP:
    return MLP(
        n_features=4, n_classes=3, hidden=[hidden], dropout=0.0, online=DEFAULT.online,
        neighbors=DEFAULT.neighbors, memory=DEFAULT.memory, kalman=DEFAULT.kalman,
    )  # fmt: skip


def test_versions_increase_and_round_trip(tmp_path: Path) -> None:
    store = ModelStore(tmp_path, "default")
    assert store.latest() is None
    first = store.save(mlp().state_dict(), CLASSES, metrics={"accuracy": 0.8})
    original = mlp()
    second = store.save(original.state_dict(), CLASSES, thresholds={"auto_label": 0.97})
    assert (first.version, second.version) == (1, 2)
    assert store.versions() == [1, 2] and store.latest() == second
    config = ModelConfig(n_features=4, classes=CLASSES, hidden=[8], dropout=0, store=tmp_path)
    loaded = ModelLoader(config).load(second).model.network.cpu()
    x = torch.randn(5, 4)
    assert torch.equal(loaded(x), original(x))
    assert store.checkpoint(1).metrics == {"accuracy": 0.8}


@pytest.mark.parametrize(("folder", "files"), [(0o755, 0o644), (0o770, 0o660), (0o700, 0o600)])
def test_checkpoints_get_the_permissions_of_their_folder(
    tmp_path: Path, folder: int, files: int
) -> None:
    store = ModelStore(tmp_path, "default")
    (tmp_path / "default").chmod(folder)
    checkpoint = store.save(mlp().state_dict(), CLASSES)
    store.retune(checkpoint, {"budget": 0.5})
    for name in ("v000001.pt", "v000001.json"):
        assert stat.S_IMODE((tmp_path / "default" / name).stat().st_mode) == files, name


FULL_DISK = """
import resource, signal, sys
from pathlib import Path
from streamal.errors import ModelError
from streamal.model import MLP, ModelStore

store = ModelStore(Path(sys.argv[1]), "default")
checkpoint = store.save(MLP(4, 3, [8], 0.0).state_dict(), ["a", "b", "c"])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write over the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100))  # smaller than any checkpoint file
for attempt in (lambda: store.save(MLP(4, 3, [8], 0.0).state_dict(), ["a", "b", "c"]),
                lambda: store.retune(checkpoint, {"budget": 0.5})):
    try:
        attempt()
    except ModelError as error:
        print(error)
"""


def test_a_write_that_fails_is_one_line_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(tmp_path)], capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr[-2000:]
    folder = tmp_path / "default"
    assert done.stdout.splitlines() == [
        f"{folder / 'v000002.pt'}: cannot write (File too large)",
        f"{folder / 'v000001.json'}: cannot write (File too large)",
    ]
    assert sorted(p.name for p in folder.iterdir()) == ["v000001.json", "v000001.pt"]
    assert ModelStore(tmp_path, "default").latest().thresholds == {}  # type: ignore[union-attr]


def test_pruning_keeps_the_newest_versions_and_the_newest_older_rounds(tmp_path: Path) -> None:
    store = ModelStore(tmp_path, "default")
    state = mlp().state_dict()
    for version in range(1, 11):  # rounds publish versions 1, 4 and 6; updates the others
        store.save(state, CLASSES, metrics={"accuracy": 0.8} if version in (1, 4, 6) else {})
    folder = tmp_path / "default"
    (folder / "v000003.json").unlink()  # weights left behind by an earlier prune that failed
    (folder / "v000002.json").write_text("{corrupt")  # unreadable: not a round's, and deleted
    assert store.prune(keep=3, keep_rounds=1) == [1, 2, 3, 4, 5, 7]
    assert store.versions() == [6, 8, 9, 10]
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"v{v:06d}.{suffix}" for v in (6, 8, 9, 10) for suffix in ("json", "pt")
    )
    config = ModelConfig(n_features=4, classes=CLASSES, hidden=[8], dropout=0, store=tmp_path)
    assert ModelLoader(config).newest()[0].version == 10  # type: ignore[index]
    assert [c.version for c in store.checkpoints()] == [6, 8, 9, 10]
    assert store.prune(keep=3, keep_rounds=1) == []  # nothing more to do
    assert store.save(state, CLASSES).version == 11  # numbers go on from the newest
    assert store.prune(keep=1) == [6, 8, 9, 10]  # no rounds kept: the newest version only


def test_a_foreign_directory_is_refused_and_untouched(tmp_path: Path) -> None:
    (tmp_path / "thesis.tex").write_text("precious")
    with pytest.raises(ModelError, match="not a streamal model store"):
        ModelStore(tmp_path, "default")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis.tex"]


def test_incomplete_versions_are_invisible(tmp_path: Path) -> None:
    store = ModelStore(tmp_path, "default")
    store.save(mlp().state_dict(), CLASSES)
    (tmp_path / "default" / "v000002.pt").write_bytes(b"half written, no metadata yet")
    latest = store.latest()
    assert latest is not None and latest.version == 1


def test_a_new_store_opened_by_several_at_once_is_never_taken_for_foreign(tmp_path: Path) -> None:
    refused: list[ModelError] = []

    def open_store(root: Path, name: str, start: threading.Barrier) -> None:
        start.wait()
        try:
            ModelStore(root, name)
        except ModelError as error:
            refused.append(error)

    for attempt in range(200):  # a race: each attempt lost it now and then before the fix
        start = threading.Barrier(4)
        root = tmp_path / str(attempt)
        openers = [
            threading.Thread(target=open_store, args=(root, name, start))
            for name in ("default", "default", "other", "default")
        ]
        for opener in openers:
            opener.start()
        for opener in openers:
            opener.join()
    assert refused == []
