"""``aekit.PretrainedClassifier()`` at its defaults against the same classifier from scratch, MNIST with 1% of the
labels (600, stratified), 2 seeds: the check of issue 25 that the defaults are the recipe that won.

    AEKIT_DATA_DIR=../shared/data OMP_NUM_THREADS=1 python examples/classifier_defaults.py [--seeds 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.model_selection import train_test_split

import aekit


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--labels", type=int, default=600)
    args = p.parse_args()
    ds = aekit.load_dataset("mnist")
    rows = []
    for seed in range(args.seeds):
        labelled, _ = train_test_split(np.arange(len(ds.y_train)), train_size=args.labels, stratify=ds.y_train,
                                       random_state=seed)
        y = np.full(len(ds.y_train), -1)
        y[labelled] = ds.y_train[labelled]  # -1: unlabelled (used to pretrain only)
        result = {"seed": seed}
        for name, est in (("defaults (pretrained, fine-tuned)", aekit.PretrainedClassifier(random_state=seed)),
                          ("from scratch", aekit.PretrainedClassifier(pretrain=False, random_state=seed))):
            cpu = time.process_time()
            est.fit(ds.X_train, y)
            result[name] = float(est.score(ds.X_test, ds.y_test))
            result[name + " CPU s"] = round(time.process_time() - cpu, 1)
        rows.append(result)
        print(result, flush=True)
    for key in ("defaults (pretrained, fine-tuned)", "from scratch"):
        vals = [100 * r[key] for r in rows]
        print(f"{key}: {np.mean(vals):.2f} +- {np.std(vals, ddof=1) if len(vals) > 1 else 0:.2f} % "
              f"({', '.join(f'{v:.2f}' for v in vals)})")
    gains = [100 * (r["defaults (pretrained, fine-tuned)"] - r["from scratch"]) for r in rows]
    print(f"gain: {np.mean(gains):+.2f} points, pretrained won {sum(g > 0 for g in gains)}/{len(gains)} seeds")


if __name__ == "__main__":
    main()
