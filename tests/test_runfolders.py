"""Run folders that never lose work: saves atomic as a whole (a crash injected after every step of a save still
loads and resumes to the uninterrupted run's weights), one writer per folder, refused commands that change
nothing, outputs that cannot clobber a run, and hostile inputs refused before memory is taken."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save as st_save

import aekit
from aekit.cli import main
from aekit.errors import CheckpointError, LimitError, RunFolderError
from aekit.io import CONFIG_FILE, MODEL_FILE, POINTER_FILE, checkpoint_dir, load_checkpoint


class Crash(BaseException):
    """What kill -9 does to the writer: it stops at once; no cleanup runs (except clauses catch Exception)."""


OPS = ("mkdir", "fsync", "rename", "replace", "unlink", "rmdir")


def _count_ops(monkeypatch, crash_after: int | None = None) -> dict:
    """Count the file-system steps (each fsync, rename, replace, unlink, mkdir, rmdir) from now on; with
    ``crash_after``, crash right after that step completes."""
    calls = {"n": 0}
    for name in OPS:
        real = getattr(os, name)

        def wrapped(*args, __real=real, __name=name, **kwargs):
            result = __real(*args, **kwargs)
            calls["n"] += 1
            if crash_after is not None and calls["n"] == crash_after:
                raise Crash(f"crashed after step {calls['n']} ({__name})")
            return result

        monkeypatch.setattr(os, name, wrapped)
    return calls


PARAMS = dict(hidden_layers=(12, 6), epochs=2, batch_size=32, checkpoint_every=1, random_state=0, device="cpu")


@pytest.fixture(scope="module")
def rows():
    return np.random.default_rng(0).random((96, 16), dtype=np.float32)  # 3 batches an epoch


@pytest.fixture(scope="module")
def uninterrupted(rows):
    est = aekit.Autoencoder(**PARAMS).fit(rows)
    return {k: v.clone() for k, v in est.model_.state_dict().items()}, [r["loss"] for r in est.history_]


@pytest.fixture(scope="module")
def steps_per_run(rows, tmp_path_factory):
    # once unpatched first: the first fit imports modules, whose .pyc files Python writes (os.replace) once
    aekit.Autoencoder(**PARAMS, checkpoint_dir=str(tmp_path_factory.mktemp("warm") / "run")).fit(rows)
    mp = pytest.MonkeyPatch()
    calls = _count_ops(mp)
    aekit.Autoencoder(**PARAMS, checkpoint_dir=str(tmp_path_factory.mktemp("count") / "run")).fit(rows)
    mp.undo()
    return calls["n"]


def _resume_to_the_end(run: Path, rows: np.ndarray):
    """Load whatever the crash left and train to the end; a crash before the first checkpoint leaves none."""
    if not (run / POINTER_FILE).exists():  # crashed before its first switch: a run that has not begun
        with pytest.raises(CheckpointError, match="no checkpoint"):
            aekit.load(run)
        return aekit.Autoencoder(**PARAMS, checkpoint_dir=str(run)).fit(rows)
    est = aekit.load(run)  # complete: the previous checkpoint or the new one, never a mix
    return est.set_params(epochs=PARAMS["epochs"], warm_start=True).fit(rows)


def _assert_same(est, uninterrupted):
    weights, losses = uninterrupted
    for k, v in est.model_.state_dict().items():
        assert torch.equal(v, weights[k]), k
    assert [r["loss"] for r in est.history_] == losses


def _crash_then_resume(rows, uninterrupted, run, step, monkeypatch) -> bool:
    """Crash the run after its ``step``-th file-system step, then load and resume; False if it has fewer steps."""
    _count_ops(monkeypatch, crash_after=step)
    try:
        aekit.Autoencoder(**PARAMS, checkpoint_dir=str(run)).fit(rows)
        crashed = False
    except Crash:
        crashed = True
    monkeypatch.undo()
    _assert_same(_resume_to_the_end(run, rows) if crashed else aekit.load(run), uninterrupted)
    return crashed


def test_a_crash_after_any_step_of_the_first_saves_loads_and_resumes_bit_identical(rows, uninterrupted,
                                                                                    steps_per_run, tmp_path,
                                                                                    monkeypatch):
    """The first 40 steps of a run cover its first three saves (the third also removes the first checkpoint)."""
    assert steps_per_run > 40
    for step in range(1, 41):
        assert _crash_then_resume(rows, uninterrupted, tmp_path / f"run{step}", step, monkeypatch)


@pytest.mark.slow
def test_a_crash_after_every_step_of_every_save_loads_and_resumes_bit_identical(rows, uninterrupted,
                                                                                 steps_per_run, tmp_path,
                                                                                 monkeypatch):
    step = 0
    while _crash_then_resume(rows, uninterrupted, tmp_path / f"run{step + 1}", step + 1, monkeypatch):
        step += 1
    assert step >= steps_per_run - 2  # every step of every save, until a run had no step left to crash at


def test_a_crash_inside_a_resumed_run_also_resumes_bit_identical(rows, uninterrupted, tmp_path, monkeypatch):
    """Crash once, then crash the resumed run after each step of its first saves, then resume to the end."""
    for step in range(1, 25, 3):
        run = tmp_path / f"run{step}"
        _count_ops(monkeypatch, crash_after=17)  # inside the second save of the first run
        with pytest.raises(Crash):
            aekit.Autoencoder(**PARAMS, checkpoint_dir=str(run)).fit(rows)
        monkeypatch.undo()
        est = aekit.load(run).set_params(warm_start=True)
        _count_ops(monkeypatch, crash_after=step)
        with pytest.raises(Crash):
            est.fit(rows)
        monkeypatch.undo()
        _assert_same(_resume_to_the_end(run, rows), uninterrupted)


def test_old_flat_run_folders_load_and_move_to_the_new_layout(rows, tmp_path):
    est = aekit.Autoencoder(**{**PARAMS, "epochs": 1}).fit(rows)
    current = checkpoint_dir(est.save(tmp_path / "new"))
    old = tmp_path / "old"
    shutil.copytree(current, old)  # the layout aekit wrote before: the four files in the run folder itself
    loaded = aekit.load(old)
    np.testing.assert_array_equal(loaded.transform(rows), est.transform(rows))
    loaded.set_params(epochs=2, warm_start=True, checkpoint_dir=str(old)).fit(rows)
    assert (old / POINTER_FILE).is_file() and not (old / CONFIG_FILE).exists()
    assert aekit.load(old).n_epochs_ == 2


def test_stale_temp_files_of_killed_writers_are_removed(rows, tmp_path):
    run = aekit.Autoencoder(**{**PARAMS, "epochs": 1}).fit(rows).save(tmp_path / "run")
    (run / ".checkpoint-00000099.tmp-12345").mkdir()
    (run / ".checkpoint-00000099.tmp-12345" / MODEL_FILE).write_bytes(b"half")
    (run / ".run.json.abcd1234.tmp").write_text("{")
    (run / "mine.tmp").write_text("the user's")
    aekit.load(run).save(run)
    names = {p.name for p in run.iterdir()}
    assert ".checkpoint-00000099.tmp-12345" not in names and ".run.json.abcd1234.tmp" not in names
    assert "mine.tmp" in names  # only aekit's own temp files


# -- one writer per run folder -------------------------------------------------------------------------------------
HOLD = textwrap.dedent("""
    import sys, time
    from aekit.locking import folder_lock
    with folder_lock(sys.argv[1]):
        print("held", flush=True)
        time.sleep(float(sys.argv[2]))
""")


def test_a_second_writer_is_refused_naming_the_holder(rows, tmp_path, capsys):
    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run), "30"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunFolderError, match=f"in use: pid {holder.pid}"):
            aekit.Autoencoder(**PARAMS, checkpoint_dir=str(run)).fit(rows)
        assert main(["train", "--hidden", "8", "--epochs", "1", "--out", str(run), "--quiet"]) == 2
        assert f"in use: pid {holder.pid}" in capsys.readouterr().err
        assert {p.name for p in run.iterdir()} == {".lock"}  # the refused ones wrote nothing
    finally:
        holder.kill()
        holder.wait()
    # the kernel dropped the dead holder's lock: it does not block
    aekit.Autoencoder(**PARAMS, checkpoint_dir=str(run)).fit(rows)
    assert aekit.load(run).n_epochs_ == 2


@pytest.mark.slow
def test_two_trainers_on_one_folder_one_refused_the_other_intact(tmp_path):
    run = tmp_path / "run"
    args = [sys.executable, "-m", "aekit.cli", "train", "--hidden", "32,16", "--epochs", "300", "--checkpoint-every",
            "2", "--out", str(run), "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.Popen(args, cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (run / POINTER_FILE).exists() and time.time() < deadline:
        time.sleep(0.05)
    second = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert second.returncode == 2 and f"in use: pid {first.pid}" in second.stderr, second.stderr
    assert second.stderr.count("\n") == 1 and "Traceback" not in second.stderr
    assert first.wait(timeout=300) == 0, first.stderr.read()
    assert aekit.load(run).n_epochs_ == 300
    reference = tmp_path / "reference"
    assert subprocess.run([*args[:-3], "--out", str(reference), "--quiet"], cwd=tmp_path, env=env).returncode == 0
    assert (checkpoint_dir(run) / MODEL_FILE).read_bytes() == (checkpoint_dir(reference) / MODEL_FILE).read_bytes()


# -- refused commands change nothing; outputs never clobber a run -----------------------------------------------------
def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else b"<dir>"
            for p in sorted(folder.rglob("*"))}


@pytest.fixture
def trained_run(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--hidden", "16,8", "--epochs", "2", "--out", str(run), "--quiet"]) == 0
    return run


def test_refused_commands_change_nothing(trained_run, tmp_path, capsys):
    run = trained_run
    other = tmp_path / "other.npy"
    np.save(other, np.random.default_rng(0).random((30, 64), dtype=np.float32))
    before = _snapshot(run)
    refused = {
        ("train", "--resume", str(run), "--data", str(other)): "trained on --dataset digits",
        ("train", "--resume", str(run), "--hidden", "32"): "--hidden 32 (the run has 16,8)",
        ("train", "--resume", str(run), "--out", str(tmp_path / "elsewhere")): "contradicts it",
        ("train", "--resume", str(run), "--model", "vae"): "holds a run of --model ae, not vae",
        ("train", "--out", str(run), "--hidden", "8"): "other settings (hidden_layers)",
        ("train", "--out", str(run), "--hidden", "16,8", "--dataset", "mnist"): "trained on --dataset digits",
        ("train", "--resume", str(run), "--lr", "-1"): "--lr -1.0 (the run has 0.001)",
        ("encode", str(run), "--out", str(checkpoint_dir(run) / MODEL_FILE)): "would overwrite checkpoint-",
        ("encode", str(run), "--out", str(run / POINTER_FILE)): "would overwrite checkpoint.json",
        ("reconstruct", str(run), "--out", str(run / "run.json")): "would overwrite run.json",
        ("generate", str(run), "--out", str(run / "run.json")): "would overwrite run.json",
        ("report", str(run), "--out", str(run / CONFIG_FILE)): "would overwrite config.json",
    }
    for argv, message in refused.items():
        assert main(list(argv)) == 2, argv
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, (argv, err)
        assert _snapshot(run) == before, argv
    assert not (tmp_path / "elsewhere").exists()


def test_nothing_is_written_through_a_link_in_a_run_folder(trained_run, tmp_path, capsys):
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"precious")
    (trained_run / "reconstructions.png").unlink()
    (trained_run / "reconstructions.png").symlink_to(outside)
    assert main(["train", "--hidden", "16,8", "--epochs", "3", "--out", str(trained_run), "--quiet"]) == 2
    assert "symbolic link" in capsys.readouterr().err
    assert outside.read_bytes() == b"precious"
    link = trained_run / "codings.npy"
    link.symlink_to(tmp_path / "target.npy")
    assert main(["encode", str(trained_run), "--out", str(link)]) == 2
    assert "symbolic link" in capsys.readouterr().err and not (tmp_path / "target.npy").exists()


def test_a_failed_first_run_leaves_no_folder(tmp_path, capsys):
    run = tmp_path / "fresh"
    assert main(["train", "--lr", "10", "--optimizer", "sgd", "--epochs", "3", "--out", str(run), "--quiet"]) == 2
    assert "diverged" in capsys.readouterr().err and not run.exists()


# -- hostile or absurd inputs: refused before memory is taken ---------------------------------------------------------
def test_gzip_bomb_idx_is_not_inflated(tmp_path):
    from aekit.data import read_idx

    small = tmp_path / "bomb.gz"  # the header declares 2 x 2 bytes, the stream inflates to 200 MB of zeros
    with gzip.open(small, "wb") as f:
        f.write(b"\0\0\x08\x02" + struct.pack(">2I", 2, 2))
        for _ in range(200):
            f.write(bytes(2**20))
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="trailing bytes"):
        read_idx(small)
    assert time.perf_counter() - t0 < 1.0  # it read 5 bytes of data, not 200 MB
    huge = tmp_path / "huge.gz"  # the header declares 10^18 values
    with gzip.open(huge, "wb") as f:
        f.write(b"\0\0\x08\x02" + struct.pack(">2I", 10**9, 10**9))
    with pytest.raises(LimitError, match="needs .* more than"):
        read_idx(huge)


def _png_claiming(path: Path, width: int, height: int) -> None:
    """A tiny valid PNG whose header (IHDR, CRC fixed) claims ``width`` x ``height`` pixels."""
    from PIL import Image

    Image.new("L", (4, 4)).save(path)
    data = bytearray(path.read_bytes())
    start = data.index(b"IHDR")
    data[start + 4:start + 12] = struct.pack(">2I", width, height)
    data[start + 17:start + 21] = struct.pack(">I", zlib.crc32(bytes(data[start:start + 17])))
    path.write_bytes(bytes(data))


def test_image_claiming_huge_dimensions_is_refused_from_its_header(tmp_path, capsys):
    folder = tmp_path / "images"
    folder.mkdir()
    _png_claiming(folder / "a.png", 30000, 30000)
    with pytest.raises(LimitError, match="900000000 pixels"):
        aekit.load_file(folder)
    assert main(["train", "--data", str(folder), "--out", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "900000000 pixels" in err and err.count("\n") == 1 and not (tmp_path / "r").exists()
    _png_claiming(folder / "a.png", 12000, 12000)  # under Pillow's limit, over aekit's (10^8)
    with pytest.raises(LimitError, match="12000 x 12000 pixels"):
        aekit.load_file(folder)


def test_npy_header_claiming_petabytes_is_refused(tmp_path):
    path = tmp_path / "huge.npy"
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (10**9, 10**6)})
    with pytest.raises(ValueError, match="truncated|needs"):
        aekit.load_file(path)
    with open(path, "ab") as f:
        f.write(bytes(64))
    with pytest.raises(ValueError):
        aekit.load_file(path)


def test_absurd_layer_sizes_are_refused_before_allocation(tmp_path, capsys, rows):
    t0 = time.perf_counter()
    with pytest.raises(LimitError, match="parameters"):
        aekit.Autoencoder((10**9,), epochs=1).fit(rows)
    assert main(["train", "--hidden", "1000000000", "--out", str(tmp_path / "r"), "--quiet"]) == 2
    assert "use smaller layers" in capsys.readouterr().err and not (tmp_path / "r").exists()
    assert time.perf_counter() - t0 < 30
    # the same in an edited config.json
    folder = checkpoint_dir(aekit.Autoencoder((8,), epochs=1).fit(rows).save(tmp_path / "ok"))
    config = json.loads((folder / CONFIG_FILE).read_text())
    config["model"]["config"]["hidden_layers"] = [10**9]
    (folder / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(LimitError, match="parameters"):
        aekit.load(folder)


def _tampered(folder: Path, name: str, data: bytes) -> None:
    """Replace a checkpoint file and fix its checksum in config.json (a consistent but hostile checkpoint)."""
    (folder / name).write_bytes(data)
    config = json.loads((folder / CONFIG_FILE).read_text())
    config["files"][name] = hashlib.sha256(data).hexdigest()
    (folder / CONFIG_FILE).write_text(json.dumps(config))


def test_non_finite_weights_are_refused_on_load(rows, tmp_path):
    est = aekit.Autoencoder((8,), epochs=1).fit(rows)
    folder = checkpoint_dir(est.save(tmp_path / "run"))
    weights = {k: v.clone() for k, v in est.model_.state_dict().items()}
    weights["encoder.0.weight"][0, 0] = float("nan")
    _tampered(folder, MODEL_FILE, st_save(weights, metadata={"format": "pt"}))
    with pytest.raises(CheckpointError, match="NaN or inf"):
        aekit.load(folder)


@pytest.mark.parametrize("damage", ["history_not_a_list", "history_rows_not_records", "state_missing_rng",
                                    "state_bad_groups"])
def test_damaged_training_state_or_history_gives_a_clear_error(rows, tmp_path, damage):
    est = aekit.Autoencoder((8,), epochs=1, checkpoint_every=1).fit(rows)
    folder = checkpoint_dir(est.save(tmp_path / "run"))
    from safetensors.torch import load as st_load

    if damage == "history_not_a_list":
        _tampered(folder, "history.json", b'{"epoch": 1}')
    elif damage == "history_rows_not_records":
        _tampered(folder, "history.json", b"[1, 2]")
    else:
        state = st_load((folder / "training_state.safetensors").read_bytes())
        meta = {"param_groups": "[{]"} if damage == "state_bad_groups" else {
            "param_groups": json.loads(json.dumps(est._state_meta))["param_groups"]}
        if damage == "state_missing_rng":
            state.pop("rng.shuffle")
        _tampered(folder, "training_state.safetensors", st_save(state, metadata=meta))
    with pytest.raises((CheckpointError, ValueError, OSError)) as caught:
        aekit.load(folder).set_params(epochs=2, warm_start=True).fit(rows)
    assert not isinstance(caught.value, (KeyError, AttributeError)) and "damaged" in str(caught.value) \
        or "corrupt" in str(caught.value)


def test_16_bit_pngs_are_scaled_not_clipped(tmp_path):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    values = (np.arange(16).reshape(4, 4) * 4000).astype(np.uint16)
    for i in range(3):
        Image.fromarray(values).save(folder / f"{i}.png")
    X, _, shape = aekit.load_file(folder)
    assert shape == (4, 4)
    np.testing.assert_allclose(X[0], values.ravel() / 65535, rtol=1e-6)
    assert X.max() > 0.9  # 60000 / 65535, where clipping to 8 bits gave 1.0 for every value above 255


def test_a_reader_during_saves_always_sees_a_complete_checkpoint(rows, tmp_path):
    """A second process polls the folder while a run saves after every batch: every read loads."""
    run = tmp_path / "run"
    aekit.Autoencoder(**{**PARAMS, "epochs": 1}, checkpoint_dir=str(run)).fit(rows)
    reader = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import sys, time
        import aekit
        from aekit.io import load_checkpoint
        n, t0 = 0, time.time()
        while time.time() - t0 < float(sys.argv[2]):
            load_checkpoint(sys.argv[1])
            n += 1
        print(n)
    """), str(run), "4"], stdout=subprocess.PIPE, text=True)
    est = aekit.load(run).set_params(epochs=60, warm_start=True)
    t0 = time.time()
    while time.time() - t0 < 3:
        est.fit(rows)
        est.set_params(epochs=est.epochs + 20)
    out, _ = reader.communicate(timeout=60)
    assert reader.returncode == 0 and int(out) > 10
