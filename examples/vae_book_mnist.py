"""The book's variational autoencoder on MNIST (Géron ch. 15; TECHNIQUES.md section 9): 784-500-500-20-500-500-784,
ELU, He init, Adam 1e-3, batch 150; loss per image = BCE summed over pixels + KL (book: ~97.6 after 50 epochs).

    OMP_NUM_THREADS=1 AEKIT_DATA_DIR=../shared/data nohup python examples/vae_book_mnist.py [EPOCHS [DEVICE]] \
        > runs/vae-book.log 2>&1 &

DEVICE: cpu (the default, one thread: the figures in docs/results.md) or cuda.

Prints the training loss per epoch, then the test -ELBO; writes the run to runs/vae-book and a sample grid to
docs/vae-book-samples.png.
"""

from __future__ import annotations

import sys
import time

import torch

import aekit
from aekit.viz import plot_samples

if __name__ == "__main__":
    torch.set_num_threads(1)
    epochs = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    device = sys.argv[2] if len(sys.argv) > 2 else "cpu"
    ds = aekit.load_dataset("mnist")
    vae = aekit.VariationalAutoencoder((500, 500), latent_dim=20, activation="elu", init="he", learning_rate=1e-3,
                                       lr_schedule="constant", binarize=None, batch_size=150, epochs=epochs,
                                       random_state=0, device=device, checkpoint_dir="runs/vae-book")
    wall, cpu = time.perf_counter(), time.process_time()
    vae.fit(ds.X_train)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print("| epoch | loss (nats/image) | reconstruction | KL |\n| --- | --- | --- | --- |")
    for r in vae.history_:
        print(f"| {r['epoch']} | {r['loss']:.2f} | {r['reconstruction']:.2f} | {r['kl']:.2f} |")
    where = torch.cuda.get_device_name() if vae.device_.type == "cuda" else f"{torch.get_num_threads()} thread(s)"
    print(f"training: {epochs} epochs, {wall / 60:.1f} min wall, {cpu / 60:.1f} CPU min, {where}", flush=True)
    elbo = vae.elbo(ds.X_test, n_samples=1, random_state=0) if hasattr(vae, "elbo") else None
    if elbo is not None:
        print(f"test -ELBO (grey-level targets, as trained): {-elbo.mean():.2f} nats/image")
    fig = plot_samples(vae.sample(64, random_state=0), ds.image_shape, ncols=8,
                       title=f"VAE 784-500-500-20, {epochs} epochs: decoded N(0, I) codings (means)")
    fig.savefig("docs/vae-book-samples.png", dpi=80)
    print("wrote docs/vae-book-samples.png")
