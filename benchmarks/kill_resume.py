"""kill -9 at random moments: a ``--checkpoint-every 1`` run is killed with SIGKILL again and again (the same
command restarts it, resuming by itself), each time the run folder must load; at the end it must hold exactly the
bytes of an uninterrupted run.

    python benchmarks/kill_resume.py [--kills 50] [--seed 0] [--epochs 200]

Each kill lands at a random moment between the process start and a little after its first training steps; with a
checkpoint after every batch most kills land inside a save (the script counts the ones that left a half-written
checkpoint folder behind). Prints one line per kill and a summary; exits 1 if any check fails.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMAND = ["train", "--dataset", "digits", "--hidden", "64,32", "--batch-size", "32", "--checkpoint-every", "1",
           "--seed", "0", "--quiet"]


def _aekit(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "aekit.cli", *args]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0, help="seeds the kill moments")
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--window", type=float, default=2.0, help="seconds of training a kill may wait for")
    args = parser.parse_args(argv)
    import aekit
    from aekit.io import MODEL_FILE, checkpoint_dir, has_checkpoint

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        command = [*COMMAND, "--epochs", str(args.epochs)]
        t0 = time.perf_counter()
        reference = subprocess.run(_aekit([*command, "--out", str(tmp / "reference")]), cwd=tmp, env=env,
                                   capture_output=True, text=True)
        if reference.returncode != 0:
            print(reference.stderr)
            return 1
        print(f"uninterrupted run: {time.perf_counter() - t0:.0f} s", flush=True)
        # how long a fresh process takes to its first checkpoint: kills land in [0.3 x that, that + window]
        victim = tmp / "victim"
        t0 = time.perf_counter()
        proc = subprocess.Popen(_aekit([*command, "--out", str(victim)]), cwd=tmp, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        while not has_checkpoint(victim) and proc.poll() is None:
            time.sleep(0.01)
        startup = time.perf_counter() - t0
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        print(f"first checkpoint after {startup:.1f} s; killed at once", flush=True)
        failures, inside_saves, completed = 0, 0, False
        for kill in range(1, args.kills + 1):
            delay = rng.uniform(0.3 * startup, startup + args.window)
            proc = subprocess.Popen(_aekit([*command, "--out", str(victim)]), cwd=tmp, env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            try:
                proc.wait(timeout=delay)
                completed = True
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
            half = [p.name for p in victim.iterdir() if p.name.startswith(".checkpoint-")]
            inside_saves += bool(half)
            try:
                est = aekit.load(victim)
                where = f"epoch {est.n_epochs_}, batch {int(est._train_state.get('position.step', 0))}"
                ok = True
            except Exception as exc:  # noqa: BLE001 (reported, counted)
                where, ok = f"LOAD FAILED: {type(exc).__name__}: {exc}", False
            failures += not ok
            print(f"kill {kill:2d} after {delay:4.2f} s: {'loads' if ok else 'BROKEN'} at {where}"
                  f"{' (a save was in flight: ' + ', '.join(half) + ')' if half else ''}"
                  f"{' (it had finished)' if completed else ''}", flush=True)
            if completed:
                break
        final = subprocess.run(_aekit([*command, "--out", str(victim)]), cwd=tmp, env=env, capture_output=True,
                               text=True)
        same = final.returncode == 0 and (checkpoint_dir(victim) / MODEL_FILE).read_bytes() == (
            checkpoint_dir(tmp / "reference") / MODEL_FILE).read_bytes()
        def losses(run: Path) -> list[dict]:
            return [{k: v for k, v in r.items() if k != "time"} for r in aekit.load(run).history_]

        history_same = same and losses(victim) == losses(tmp / "reference")
        print(f"\n{kill} kills (SIGKILL), {kill - failures}/{kill} left a folder that loads, {inside_saves} landed "
              f"inside a save; resumed to the end: model.safetensors {'identical' if same else 'DIFFERENT'} to the "
              f"uninterrupted run's, history {'identical' if history_same else 'DIFFERENT'}")
        return 0 if failures == 0 and same and history_same and not completed else 1


if __name__ == "__main__":
    raise SystemExit(main())
