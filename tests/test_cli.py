import json
import subprocess
import sys

import numpy as np
import pytest

from aekit.cli import main
from aekit.io import checkpoint_dir


def last_json(capsys):
    out = capsys.readouterr().out.strip().splitlines()
    return json.loads(out[-1])


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "run"
    assert main(["train", "--hidden", "32,16", "--epochs", "3", "--out", str(path), "--quiet", "--json"]) == 0
    return path


def test_train_writes_run_folder(run):
    for name in ("checkpoint.json", "reconstructions.png", "run.json"):
        assert (run / name).is_file(), name
    current = checkpoint_dir(run)  # the checkpoint the pointer names, in a folder of its own
    assert current.parent == run and current.name.startswith("checkpoint-")
    for name in ("model.safetensors", "config.json", "history.json", "training_state.safetensors"):
        assert (current / name).is_file(), name
    notes = json.loads((run / "run.json").read_text())
    assert notes["data"] == {"dataset": "digits"} and notes["metrics"]["epochs"] == 3


def test_evaluate_json(run, capsys):
    assert main(["evaluate", str(run), "--dataset", "digits", "--json"]) == 0
    result = last_json(capsys)
    notes = json.loads((run / "run.json").read_text())
    assert result["test_mse"] == pytest.approx(notes["metrics"]["test_mse"])


def test_encode_reconstruct_info(run, tmp_path, capsys):
    assert main(["encode", str(run), "--out", str(tmp_path / "z.npy")]) == 0
    assert np.load(tmp_path / "z.npy").shape == (360, 16)
    assert main(["reconstruct", str(run), "--split", "train", "--out", str(tmp_path / "r.npy")]) == 0
    assert np.load(tmp_path / "r.npy").shape == (1437, 64)
    capsys.readouterr()
    assert main(["info", str(run), "--json"]) == 0
    info = last_json(capsys)
    assert info["epochs_done"] == 3 and info["model"]["hidden_layers"] == [32, 16]


def test_same_out_resumes_and_other_settings_are_refused(run, capsys):
    assert main(["train", "--hidden", "32,16", "--epochs", "4", "--out", str(run), "--quiet", "--json"]) == 0
    assert last_json(capsys)["epochs"] == 4
    assert main(["train", "--hidden", "8", "--out", str(run), "--quiet"]) == 2
    assert "already holds a run with other settings (hidden_layers)" in capsys.readouterr().err


def test_train_with_report(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--hidden", "16", "--epochs", "1", "--out", str(run), "--quiet", "--report", "--json"]) == 0
    html = (run / "report.html").read_text()
    assert last_json(capsys)["report"] == str(run / "report.html")
    assert "Reconstructions" in html and "data:image/png;base64," in html
    assert oct((run / "report.html").stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask():
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_train_on_user_file(tmp_path, capsys):
    X = np.random.default_rng(0).random((50, 6)).astype(np.float32)
    np.save(tmp_path / "x.npy", X)
    assert main(["train", "--data", str(tmp_path / "x.npy"), "--hidden", "3", "--epochs", "2",
                 "--out", str(tmp_path / "run"), "--quiet", "--json"]) == 0
    assert last_json(capsys)["test_mse"] > 0


def user_error(args, capsys, message):
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err, err
    assert "Traceback" not in err


def test_user_errors_exit_2_without_traceback(run, tmp_path, capsys):
    bad = tmp_path / "nan.npy"
    np.save(bad, np.array([[0.1, np.nan], [0.3, 0.4]], dtype=np.float32))
    user_error(["train", "--data", str(bad), "--out", str(tmp_path / "r1"), "--quiet"], capsys, "NaN")
    user_error(["evaluate", str(tmp_path / "missing")], capsys, "no checkpoint at")
    narrow = tmp_path / "narrow.npy"
    np.save(narrow, np.zeros((5, 63), dtype=np.float32))
    user_error(["evaluate", str(run), "--data", str(narrow)], capsys, "63 features, but Autoencoder is expecting 64")
    user_error(["train", "--data", str(tmp_path / "nope.csv"), "--quiet"], capsys, "No such file")
    user_error(["train", "--dataset", "nope", "--quiet"], capsys, "nknown dataset 'nope'")
    user_error(["train", "--lr", "-1", "--out", str(tmp_path / "r2"), "--quiet"], capsys, "learning_rate")
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r2").exists()  # nothing half-written
    user_error(["train", "--lr", "10", "--optimizer", "sgd", "--epochs", "3", "--out", str(tmp_path / "r3"),
                "--quiet"], capsys, "diverged at epoch 1")
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "config.json").write_text("{")
    user_error(["info", str(tmp_path / "corrupt")], capsys, "not valid JSON")


def test_console_script_runs():
    result = subprocess.run([sys.executable, "-m", "aekit.cli", "evaluate", "/nonexistent/run"],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.startswith("aekit evaluate: error:") and "Traceback" not in result.stderr
