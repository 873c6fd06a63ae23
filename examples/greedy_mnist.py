"""Greedy layer-wise training on MNIST (Géron ch. 15 / TECHNIQUES.md section 4), one table.

    AEKIT_DATA_DIR=../shared/data python examples/greedy_mnist.py
"""

from __future__ import annotations

import time

import aekit


def run(name: str, reference: str, **kw) -> None:
    ds = aekit.load_dataset("mnist")
    t0 = time.perf_counter()
    est = aekit.Autoencoder(random_state=0, **kw).fit(ds.X_train)
    print(f"| {name} | {-est.score(ds.X_test):.5f} | {reference} | {time.perf_counter() - t0:.0f} s |", flush=True)


if __name__ == "__main__":
    book = dict(hidden_layers=(300, 150), activation="elu", init="he", batch_size=150, pretrain="greedy",
                phase_epochs=(4, 4))
    print("| model | test MSE | reference | CPU time |\n| --- | --- | --- | --- |")
    run("784-300-150-300-784, phases 4+4, book's recipe (Adam 0.01, L2 1e-4)", "book: 0.00979",
        learning_rate=0.01, l2=1e-4, **book)
    run("same, phases 4+4, aekit defaults (Adam 1e-3)", "target <= 0.0098", **book)
    run("same, separate shallow autoencoders 4+4, aekit defaults", "-", **{**book, "greedy_strategy": "separate"})
    deep = dict(hidden_layers=(500, 250, 100, 30), batch_size=150)
    run("784-500-250-100-30, greedy 3+3+3+3 then fine-tune 6", "vs end to end below", pretrain="greedy",
        phase_epochs=3, fine_tune_epochs=6, **deep)
    run("784-500-250-100-30, end to end 18 epochs from random init", "-", epochs=18, **deep)
