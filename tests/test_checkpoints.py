import json
import pickle

import numpy as np
import pytest
import torch

import aekit
from aekit.errors import CheckpointError
from aekit.io import CONFIG_FILE, MODEL_FILE, STATE_FILE, checkpoint_dir, load_checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def fitted(digits):
    X, _ = digits
    return aekit.Autoencoder((16, 8), tie_weights=True, epochs=2, random_state=0).fit(X)


def test_round_trip_gives_identical_outputs(fitted, digits, tmp_path):
    _, X_test = digits
    fitted.save(tmp_path / "run")
    loaded = aekit.load(tmp_path / "run")
    assert type(loaded) is aekit.Autoencoder
    assert loaded.get_params() == fitted.get_params()
    assert np.array_equal(loaded.transform(X_test), fitted.transform(X_test))
    assert np.array_equal(loaded.predict(X_test), fitted.predict(X_test))
    assert loaded.history_ == json.loads(json.dumps(fitted.history_))
    assert not list((tmp_path / "run").glob("*.tmp"))  # atomic writes leave no temp files


def test_checkpoint_each_epoch_and_resume_is_bit_identical(digits, tmp_path):
    X, _ = digits
    params = dict(hidden_layers=(16, 8), epochs=4, random_state=3)
    full = aekit.Autoencoder(**params).fit(X)
    part = aekit.Autoencoder(**{**params, "epochs": 2}, checkpoint_dir=str(tmp_path / "run")).fit(X)
    assert load_checkpoint(tmp_path / "run").config["fitted"]["n_epochs_"] == 2
    resumed = aekit.load(tmp_path / "run").set_params(epochs=4, warm_start=True).fit(X)
    assert resumed.n_epochs_ == 4 and part.n_epochs_ == 2
    for k, v in full.model_.state_dict().items():
        assert torch.equal(v, resumed.model_.state_dict()[k]), k
    assert [r["loss"] for r in resumed.history_] == [r["loss"] for r in full.history_]


def test_pickle_payload_is_refused_and_never_runs(fitted, tmp_path):
    run = fitted.save(tmp_path / "run")
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    data = pickle.dumps({"weight": Payload()})
    ckpt = checkpoint_dir(run)
    (ckpt / MODEL_FILE).write_bytes(data)
    with pytest.raises(CheckpointError):
        aekit.load(run)
    cfg = json.loads((ckpt / CONFIG_FILE).read_text())  # even with a matching checksum, it is no safetensors file
    import hashlib

    cfg["files"][MODEL_FILE] = hashlib.sha256(data).hexdigest()
    (ckpt / CONFIG_FILE).write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="not a valid safetensors file"):
        aekit.load(ckpt)  # the checkpoint folder alone (the run folder's pointer vouches for its config too)
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncate_model", "flip_state", "bad_json", "no_config", "no_model"])
def test_corrupt_checkpoints_are_refused(fitted, tmp_path, damage):
    run = checkpoint_dir(fitted.save(tmp_path / "run"))
    if damage == "truncate_model":
        data = (run / MODEL_FILE).read_bytes()
        (run / MODEL_FILE).write_bytes(data[: len(data) // 2])
    elif damage == "flip_state":
        data = bytearray((run / STATE_FILE).read_bytes())
        data[-1] ^= 0xFF
        (run / STATE_FILE).write_bytes(bytes(data))
    elif damage == "bad_json":
        (run / CONFIG_FILE).write_text("{not json")
    elif damage == "no_config":
        (run / CONFIG_FILE).unlink()
    else:
        (run / MODEL_FILE).unlink()
    with pytest.raises(CheckpointError):
        aekit.load(run)
    with pytest.raises(CheckpointError):
        aekit.load(run.parent)  # through the run folder's pointer


def test_missing_folder_is_clear(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        aekit.load(tmp_path / "nothing")


def test_non_finite_tensors_are_never_saved(tmp_path):
    with pytest.raises(CheckpointError, match="NaN or inf"):
        save_checkpoint(tmp_path / "run", {}, {"w": torch.tensor([1.0, float("nan")])})
    assert not (tmp_path / "run" / MODEL_FILE).exists()


def test_failed_write_keeps_the_previous_checkpoint(fitted, tmp_path, monkeypatch):
    run = fitted.save(tmp_path / "run")
    before = (checkpoint_dir(run) / MODEL_FILE).read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("aekit.io.os.replace", boom)
    with pytest.raises(OSError):
        fitted.save(run)
    assert (checkpoint_dir(run) / MODEL_FILE).read_bytes() == before
    assert not list(run.glob(".*.tmp"))
    monkeypatch.undo()
    aekit.load(run)


def test_optimizer_state_saved_in_other_groups_resumes_onto_the_right_parameters():
    """A checkpoint whose optimizer kept weights and biases in two groups (aekit before one group became the
    default without L2) resumes into today's single group, each moment on its own parameter."""
    from aekit.io import load_optimizer_state, optimizer_state_tensors
    from aekit.models import DenseAutoencoder
    from aekit.training import make_optimizer

    model = DenseAutoencoder(20, [12, 12, 6], seed=0)  # two (12,) biases and two (12, 12) weights: order matters
    weights = model.regularized_weights()
    old = torch.optim.Adam([{"params": weights}, {"params": [p for p in model.parameters()
                                                             if all(p is not w for w in weights)]}], lr=1e-3)
    model(torch.rand(8, 20)).logits.square().mean().backward()
    old.step()
    tensors, groups = optimizer_state_tensors(old)
    new = make_optimizer("adam", model.parameters(), weights, 1e-3)
    assert len(new.param_groups) == 1
    load_optimizer_state(new, tensors, groups)
    for p in model.parameters():
        assert torch.equal(new.state[p]["exp_avg"], old.state[p]["exp_avg"])
