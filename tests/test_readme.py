"""The README's examples run as written: every ``python`` block is executed, in order, in one namespace, on shrunk
MNIST (a few hundred rows: the code is the README's, only the data is smaller); every ``aekit`` command of the
``bash`` blocks is parsed by the real command line (flags, choices and types), the quick start's are run by
tests/test_cli.py."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numpy as np
import pytest

import aekit
from aekit.cli import build_parser

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", README.read_text(), flags=re.S | re.M)


def _shrunk_loader(real):
    def load(name, **kwargs):
        ds = real(name, **kwargs)
        if name in ("mnist", "fashion-mnist"):
            return ds._replace(X_train=ds.X_train[:600], y_train=ds.y_train[:600], X_test=ds.X_test[:40],
                               y_test=ds.y_test[:40])
        return ds

    return load


def test_every_python_block_runs(data_dir, tmp_path, monkeypatch):
    blocks = _blocks("python")
    assert len(blocks) >= 3
    monkeypatch.setenv("AEKIT_DATA_DIR", str(data_dir.resolve()))  # before moving: it may be relative
    monkeypatch.chdir(tmp_path)  # the examples write runs/ and samples.png where they run
    monkeypatch.setattr(aekit.data, "load_dataset", _shrunk_loader(aekit.data.load_dataset))
    import aekit.estimators.base as base

    monkeypatch.setattr(base, "AUTO_STEPS", 40)  # epochs="auto"'s budget shrunk with the data (else 10,000 steps)
    namespace: dict = {}
    for i, block in enumerate(blocks):
        exec(compile(block, f"README.md python block {i + 1}", "exec"), namespace)  # noqa: S102
    assert namespace["codings"].shape == (40, 150) and np.isfinite(namespace["nll"])
    assert namespace["chain"].shape == (100, 10, 784) and (tmp_path / "samples.png").is_file()


def _commands() -> list[list[str]]:
    commands = []
    for block in _blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("#", 1)[0].replace("[", "").replace("]", "").strip()
            words = shlex.split(line)
            if "-m" in words and "aekit.cli" in words:  # torchrun ... -m aekit.cli train ...
                words = ["aekit", *words[words.index("aekit.cli") + 1:]]
            for start in [i for i, w in enumerate(words) if w.endswith("aekit") and i + 1 < len(words)]:
                tail = words[start + 1:]
                commands.append(tail[: tail.index("&&")] if "&&" in tail else tail)
    return commands


COMMANDS = _commands()


def test_the_readme_has_commands():
    assert len(COMMANDS) >= 20


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(c)[:60] for c in COMMANDS])
def test_every_aekit_command_parses(argv):
    args = build_parser(argv).parse_args(argv)  # an unknown flag, choice or type exits here
    assert callable(args.func)
