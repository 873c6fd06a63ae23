"""Crashes, signals, divergence and data-parallel training, in small form (digits, 2 gloo processes)."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import aekit
from aekit.io import checkpoint_dir
from aekit.errors import TrainingError
from aekit.training.precision import cpu_has_bf16

# Runs the CLI, optionally sending a signal to itself inside batch KILL_AT (on the first torchrun attempt only,
# and only on rank KILL_RANK when set): a real kill -9 / SIGTERM at a known step.
LAUNCH = textwrap.dedent("""
    import os, signal, sys
    from aekit.training import steps
    at, sig, rank = int(os.environ.get("KILL_AT", "0")), int(os.environ.get("KILL_SIG", "9")), os.environ.get("KILL_RANK")
    if at and os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0" and rank in (None, os.environ.get("RANK", "0")):
        count = [0]
        def counting(original):
            def train_batch(self, x, y):
                count[0] += 1
                if count[0] == at:
                    os.kill(os.getpid(), sig)
                return original(self, x, y)
            return train_batch
        # every reconstruction step (autograd, hand-written) inherits this train_batch
        steps.ReconstructionStep.train_batch = counting(steps.ReconstructionStep.train_batch)
    from aekit.cli import main
    sys.exit(main(sys.argv[1:]))
""")

TRAIN = ["train", "--hidden", "32,16", "--noise", "gaussian:0.1", "--epochs", "3", "--batch-size", "64",
         "--checkpoint-every", "4", "--seed", "3", "--quiet"]


@pytest.fixture
def launch(tmp_path):
    script = tmp_path / "launch.py"
    script.write_text(LAUNCH)

    def run(args, torchrun=None, **env):
        cmd = [sys.executable, str(script), *args]
        if torchrun:
            port = socket.socket()
            port.bind(("127.0.0.1", 0))
            free = port.getsockname()[1]
            port.close()
            cmd = [sys.executable, "-m", "torch.distributed.run", *torchrun, "--rdzv-backend=c10d",
                   f"--rdzv-endpoint=127.0.0.1:{free}", str(script), *args]
        full_env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo",
                    **{k: str(v) for k, v in env.items()}}
        result = subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=180,
                                stdin=subprocess.DEVNULL, cwd=tmp_path)
        (tmp_path / "stderr.txt").write_text(result.stderr)
        return result

    return run


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["32-true", pytest.param("bf16-mixed", marks=pytest.mark.skipif(
    not cpu_has_bf16(), reason="this CPU has no bfloat16 units"))])
def test_kill_9_then_resume_is_bit_identical(launch, tmp_path, precision):
    full, crashed = tmp_path / "full", tmp_path / "crashed"
    train = [*TRAIN, "--precision", precision]
    assert launch([*train, "--out", str(full)]).returncode == 0
    killed = launch([*train, "--out", str(crashed)], KILL_AT=30, KILL_SIG=9)  # 23 batches per epoch: mid epoch 2
    assert killed.returncode == -9
    state = aekit.load(crashed)
    assert state.n_epochs_ == 1 and int(state._train_state["position.step"]) == 4  # last checkpoint: batch 4 of epoch 2
    resumed = launch(["train", "--resume", str(crashed), "--quiet"])
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout and "batch 4" in resumed.stdout
    assert (checkpoint_dir(full) / "model.safetensors").read_bytes() == (checkpoint_dir(crashed) / "model.safetensors").read_bytes()


@pytest.mark.slow
def test_kill_9_inside_a_greedy_phase_then_resume_is_bit_identical(launch, tmp_path):
    args = ["train", "--hidden", "32,16", "--greedy", "phases", "--phase-epochs", "2,2", "--fine-tune-epochs", "1",
            "--noise", "gaussian:0.1", "--batch-size", "64", "--checkpoint-every", "4", "--seed", "3", "--quiet"]
    full, crashed = tmp_path / "full", tmp_path / "crashed"
    assert launch([*args, "--out", str(full)]).returncode == 0
    killed = launch([*args, "--out", str(crashed)], KILL_AT=2 * 23 + 10, KILL_SIG=9)  # phase 2, epoch 1, batch 10
    assert killed.returncode == -9
    state = aekit.load(crashed)._train_state
    assert (int(state["position.phase"]), int(state["position.epoch"]), int(state["position.step"])) == (2, 0, 8)
    resumed = launch(["train", "--resume", str(crashed), "--quiet"])
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout and "greedy phase 2/2, epoch 1/2, batch 8" in resumed.stdout
    assert (checkpoint_dir(full) / "model.safetensors").read_bytes() == (checkpoint_dir(crashed) / "model.safetensors").read_bytes()
    assert [r["phase"] for r in aekit.load(crashed).history_] == [1, 1, 2, 2, "fine-tune"]


def test_sigterm_writes_a_checkpoint_and_exits_cleanly(launch, tmp_path):
    run = tmp_path / "run"
    stopped = launch([*TRAIN, "--out", str(run)], KILL_AT=10, KILL_SIG=int(signal.SIGTERM))
    assert stopped.returncode == 128 + signal.SIGTERM
    assert "Traceback" not in stopped.stderr and f"aekit train --resume {run}" in stopped.stderr
    est = aekit.load(run)
    assert est.n_epochs_ == 0 and int(est._train_state["position.step"]) == 10  # the exact batch it stopped at
    assert launch([*TRAIN, "--out", str(run)]).returncode == 0  # the same command again resumes by itself
    assert aekit.load(run).n_epochs_ == 3


def test_divergence_stops_and_keeps_the_last_good_checkpoint(digits, tmp_path):
    X, _ = digits
    aekit.Autoencoder((32, 16), epochs=2, random_state=0, checkpoint_dir=str(tmp_path)).fit(X)
    before = (checkpoint_dir(tmp_path) / "model.safetensors").read_bytes()
    est = aekit.load(tmp_path).set_params(learning_rate=10.0, epochs=20, warm_start=True)
    with pytest.raises(TrainingError, match=r"diverged at epoch 3, batch \d+/\d+.*try a lower learning rate"):
        est.fit(X)
    assert (checkpoint_dir(tmp_path) / "model.safetensors").read_bytes() == before
    intact = aekit.load(tmp_path)
    assert intact.n_epochs_ == 2 and np.isfinite(intact.predict(X[:5])).all()


@pytest.mark.slow
def test_two_processes_train_like_one(launch, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    args = ["train", "--hidden", "32,16", "--epochs", "15", "--batch-size", "32", "--seed", "0", "--quiet", "--json"]
    single = launch([*args, "--out", str(one)])
    assert single.returncode == 0, single.stderr
    double = launch([*args, "--out", str(two)], torchrun=["--nproc-per-node=2"])
    assert double.returncode == 0, double.stderr
    mse1 = json.loads(single.stdout.strip().splitlines()[-1])["test_mse"]
    mse2 = json.loads(double.stdout.strip().splitlines()[-1])["test_mse"]  # only rank 0 prints
    assert double.stdout.count("test reconstruction MSE") == 1
    assert mse2 == pytest.approx(mse1, rel=0.1)
    assert aekit.load(two).n_epochs_ == 15


@pytest.mark.slow
def test_bf16_mixed_under_two_processes(launch, tmp_path):
    args = ["train", "--hidden", "32,16", "--epochs", "10", "--batch-size", "32", "--seed", "0", "--quiet", "--json",
            "--precision", "bf16-mixed"]
    single = launch([*args, "--out", str(tmp_path / "one")])
    double = launch([*args, "--out", str(tmp_path / "two")], torchrun=["--nproc-per-node=2"])
    assert single.returncode == 0 and double.returncode == 0, double.stderr[-2000:]
    mse = [json.loads(r.stdout.strip().splitlines()[-1])["test_mse"] for r in (single, double)]
    assert mse[1] == pytest.approx(mse[0], rel=0.1)
    two = aekit.load(tmp_path / "two")
    assert two.precision == "bf16-mixed" and all(p.dtype == torch.float32 for p in two.model_.parameters())


@pytest.mark.slow
def test_torchrun_restart_after_a_worker_is_killed(launch, tmp_path):
    run = tmp_path / "run"
    result = launch([*TRAIN, "--out", str(run)], torchrun=["--nproc-per-node=2", "--max-restarts=1"],
                    KILL_AT=30, KILL_SIG=9, KILL_RANK=1)
    assert result.returncode == 0, result.stderr[-3000:]
    assert aekit.load(run).n_epochs_ == 3
    assert "resuming" in result.stdout  # the restarted group picked up the checkpoint


@pytest.mark.slow
def test_greedy_training_under_two_processes(launch, tmp_path):
    args = ["train", "--hidden", "32,16", "--greedy", "phases", "--phase-epochs", "3,3", "--fine-tune-epochs", "2",
            "--seed", "0", "--quiet", "--json"]
    single = launch([*args, "--out", str(tmp_path / "one")])
    double = launch([*args, "--out", str(tmp_path / "two")], torchrun=["--nproc-per-node=2"])
    assert single.returncode == 0 and double.returncode == 0, double.stderr[-2000:]
    mse = [json.loads(r.stdout.strip().splitlines()[-1])["test_mse"] for r in (single, double)]
    assert mse[1] == pytest.approx(mse[0], rel=0.05)
    assert [r["phase"] for r in aekit.load(tmp_path / "two").history_] == [1, 1, 1, 2, 2, 2, "fine-tune", "fine-tune"]


def _streamed_data(tmp_path, shards=False):
    """20,000 uint8 rows of 64 (noisy digits) in a .npy, or in a folder of 4 .npy shards of 5,000 rows: with 64 KiB
    windows, each window is one 4,096-row block."""
    X = aekit.load_dataset("digits").X_train
    rng = np.random.default_rng(0)
    rows = (np.clip(X[rng.integers(0, len(X), 20_000)] + rng.normal(0, 0.05, (20_000, 64)), 0, 1) * 255).round()
    rows = rows.astype(np.uint8)
    if not shards:
        np.save(tmp_path / "rows.npy", rows)
        return tmp_path / "rows.npy"
    (tmp_path / "shards").mkdir()
    for i in range(4):
        np.save(tmp_path / "shards" / f"part-{i}.npy", rows[i * 5000 : (i + 1) * 5000])
    return tmp_path / "shards"


STREAMED = ["train", "--hidden", "32,16", "--epochs", "3", "--batch-size", "64", "--in-memory", "no", "--seed", "4",
            "--quiet"]


@pytest.mark.slow
def test_two_ranks_on_a_memory_mapped_file_train_like_one_process(launch, tmp_path):
    data = _streamed_data(tmp_path)
    args = [*STREAMED, "--data", str(data)]
    single = launch([*args, "--out", str(tmp_path / "one")], AEKIT_WINDOW_BYTES="64K")
    double = launch([*args, "--out", str(tmp_path / "two")], torchrun=["--nproc-per-node=2"], AEKIT_WINDOW_BYTES="64K")
    assert single.returncode == 0 and double.returncode == 0, double.stderr[-3000:]
    one, two = aekit.load(tmp_path / "one"), aekit.load(tmp_path / "two")
    for k, v in one.model_.state_dict().items():  # the same batches, the gradient averaged over two halves
        assert torch.allclose(v, two.model_.state_dict()[k], atol=1e-4, rtol=1e-3), k
    assert [r["loss"] for r in one.history_] == pytest.approx([r["loss"] for r in two.history_], rel=1e-4)


@pytest.mark.slow
def test_two_ranks_streaming_shards_killed_mid_window_resume_bit_for_bit(launch, tmp_path):
    data = _streamed_data(tmp_path, shards=True)
    args = [*STREAMED, "--data", str(data), "--checkpoint-every", "20"]
    full = launch([*args, "--out", str(tmp_path / "full")], torchrun=["--nproc-per-node=2"], AEKIT_WINDOW_BYTES="64K")
    assert full.returncode == 0, full.stderr[-3000:]
    # 16,000 training rows, 250 batches of 2 x 32 per epoch, windows of 4,096 rows (64 batches). Rank 1 is killed
    # (kill -9) at its batch 340: epoch 2, batch 90; torchrun restarts the group, which resumes from the checkpoint
    # of batch 80, inside the epoch's second window
    crashed = launch([*args, "--out", str(tmp_path / "crashed")], torchrun=["--nproc-per-node=2", "--max-restarts=1"],
                     KILL_AT=340, KILL_SIG=9, KILL_RANK=1, AEKIT_WINDOW_BYTES="64K")
    assert crashed.returncode == 0, crashed.stderr[-3000:]
    assert "resuming" in crashed.stdout and "epoch 2/3, batch 80" in crashed.stdout
    assert ((checkpoint_dir(tmp_path / "full") / "model.safetensors").read_bytes()
            == (checkpoint_dir(tmp_path / "crashed") / "model.safetensors").read_bytes())
