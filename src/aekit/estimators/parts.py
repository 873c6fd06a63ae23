"""The pieces an estimator is made of. Each part brings its parameters (one :class:`~aekit.params.Param` each)
and what it does with them, through a few hooks the estimator calls at fixed points of ``fit`` and inference:

- ``check(est, X)``: settings against the training data, before anything is trained (a malformed spec fails here);
- ``rows(est, X, reset)``: the estimator's input as flat float rows (images to rows, for conv models);
- ``training_rows(est, X)``: the rows training sees (a static binarization draw);
- ``penalties(est)`` / ``corruption(est)``: loss terms and input noise of the reconstruction step;
- ``pretrain(est, ...)``, ``end_to_end_epochs(est)``, ``record_extra(est)``: training before the end-to-end loop.

A family picks the parts it has (``parts = (Layers(...), Regularizers(), Training(batch_size=100))``); it never
inherits a part to switch it off. ``Part(**defaults)`` overrides the defaults of the part's parameters.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from numbers import Integral, Real
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.utils._param_validation import Interval, Options, StrOptions

from ..errors import ConfigError, DataError
from ..params import (
    Flag,
    LiveOptions,
    Param,
    UNSET,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    word_or_int,
)

if TYPE_CHECKING:
    import torch

    from ..training.loop import Position


# -- command-line value parsers (shared by every flag that takes a list) ----------------------------------------
def _ints(text: str, minimum: int, example: str) -> tuple[int, ...]:
    import argparse

    try:
        values = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like {example}, got {text!r}") from None
    if not values or min(values) < minimum:
        raise argparse.ArgumentTypeError(f"expected integers >= {minimum} like {example}, got {text!r}")
    return values


def int_list(text: str) -> tuple[int, ...]:
    """Positive sizes, e.g. ``300,150``."""
    return _ints(text, 1, "300,150")


def non_negative_int_list(text: str) -> tuple[int, ...]:
    """Integers >= 0, e.g. ``0,1,2``."""
    return _ints(text, 0, "0,1,2")


def one_or_many(text: str) -> int | tuple[int, ...]:
    """``3`` -> 3 (one value for every layer, the estimator's form), ``5,3,3`` -> (5, 3, 3)."""
    values = int_list(text)
    return values[0] if len(values) == 1 else values


def float_list(text: str) -> tuple[float, ...]:
    import argparse

    try:
        values = tuple(float(s) for s in text.split(",") if s.strip())
    except ValueError:
        values = ()
    if not values:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers like 0.01,0.001, got {text!r}")
    return values


def ints(value: Any) -> list[int]:
    """An int or a sequence of ints as a list (the models' form)."""
    return [int(v) for v in np.ravel(value)]


def _in_memory_flag(text: str) -> Any:
    import argparse

    words = {"auto": "auto", "yes": True, "true": True, "no": False, "false": False}
    if text.lower() not in words:
        raise argparse.ArgumentTypeError(f"expected auto, yes or no, got {text!r}")
    return words[text.lower()]


def _none_or_word(text: str) -> str | None:
    """A word option on the command line, ``none`` -> None."""
    return None if text.strip().lower() == "none" else text


def _activations() -> list[str]:
    from ..nn.layers import ACTIVATIONS

    return list(ACTIVATIONS)


def _optimizers() -> list[str]:
    from ..training.optim import OPTIMIZERS

    return list(OPTIMIZERS)


# -- the parts ---------------------------------------------------------------------------------------------------
class Part:
    """A piece of an estimator: its parameters (class attribute ``params``) and hooks, all no-ops here."""

    params: tuple[Param, ...] = ()
    title = "options"  # the heading of its flags in a command's help
    #: the fitted settings ``resolve`` decides (saved in the checkpoint's "fitted" entry)
    fitted: tuple[str, ...] = ()
    #: settings that make the estimator build another model (e.g. ``arch="conv"``), for tests/test_common.py
    variants: tuple[dict[str, Any], ...] = ()

    def __init__(self, **defaults: Any) -> None:
        declared = self._declared()
        names = {p.name for p in declared}
        unknown = set(defaults) - names
        if unknown:
            raise TypeError(f"{type(self).__name__} has no parameters {sorted(unknown)}; it has {sorted(names)}")
        # a value replaces the default; a Param replaces the whole declaration (another constraint, doc, flag)
        self.params = tuple((defaults[p.name] if isinstance(defaults[p.name], Param) else
                             p.replace(default=defaults[p.name])) if p.name in defaults else p for p in declared)

    def _declared(self) -> tuple[Param, ...]:
        return type(self).params

    def __repr__(self) -> str:
        return type(self).__name__

    def active(self, est: Any) -> bool:
        """Whether this part's parameters take effect with ``est``'s settings (reports show only those)."""
        return True

    def check(self, est: Any, X: np.ndarray) -> None:
        """Check the settings against validated training rows ``X``; raise ``ValueError`` subclasses."""

    def rows(self, est: Any, X: Any, reset: bool) -> Any:
        """``X`` as the estimator validates it (e.g. image stacks as flat rows); ``reset`` is True in ``fit``."""
        return X

    def training_rows(self, est: Any, X: np.ndarray) -> np.ndarray:
        return X

    def resolve(self, est: Any, X: np.ndarray) -> dict[str, Any]:
        """Fitted settings this part decides from the training data when a new model is made (``loss_``)."""
        return {}

    def restore(self, est: Any, fitted: dict[str, Any], params: dict[str, Any]) -> None:
        """Set those fitted settings again on an estimator loaded from a checkpoint."""

    def penalties(self, est: Any) -> list:
        return []

    def corruption(self, est: Any) -> Callable | None:
        return None

    def pretrain(self, est: Any, X: torch.Tensor, generator: torch.Generator, start: Position | None,
                 resume_optimizer: Callable | None, on_checkpoint: Callable, stop_requested: Callable[[], int]) -> None:
        """Training before the end-to-end loop (greedy layer-wise pretraining)."""

    def end_to_end_epochs(self, est: Any) -> int | None:
        """The epochs of end-to-end training, if this part decides them."""
        return None

    def record_extra(self, est: Any) -> dict[str, Any] | None:
        return None


_epochs_flag = word_or_int({"auto": "auto"}, "epochs")


class Training(Part):
    """What every estimator trained by the one loop has: the optimizer, batches and epochs, validation and early
    stopping, seeding, the device, checkpoints (every epoch, every N batches, on SIGINT/SIGTERM) and resume."""

    title = "training"

    params = (
        Param("optimizer", "adam", [LiveOptions(_optimizers)], "Optimizer (torch's fused kernels where they exist).",
              flag=Flag()),
        Param("learning_rate", 1e-3, positive_float(), "Learning rate.", type="float", flag=Flag("--lr")),
        Param("l2", 0.0, non_negative_float(),
              "L2 on weight matrices (never biases): adds ``l2/2 * sum(W**2)`` (TF1's ``l2_regularizer``, the "
              "book's), as coupled weight decay.", type="float"),
        Param("batch_size", 150, positive_int(), "Rows per gradient step.", type="int"),
        Param("in_memory", "auto", [StrOptions({"auto"}), "boolean"],
              "Where the training rows live: True, one float32 array in memory (the fast path); False, read from "
              "disk per window and converted per batch (:mod:`aekit.data.stream`; a source from "
              ":func:`aekit.data.open_rows` or a ``np.memmap``; uint8 stays uint8 until the batch); ``\"auto\"``: "
              "streamed when their float32 copy would take more than a quarter of the memory limit, else loaded. "
              "The choice is logged (printed with ``verbose``).", type="'auto' or bool",
              flag=Flag(parse=_in_memory_flag, metavar="auto|yes|no")),
        Param("epochs", "auto", [*non_negative_int(), StrOptions({"auto"})],
              "Total epochs (with ``warm_start``, training continues until this many have run); ``\"auto\"``: "
              "until the loss (``val_loss`` with early stopping) has not improved by ``tol`` for "
              "``n_iter_no_change`` epochs, at most ``max_epochs`` (scikit-learn's MLP rule; ``stopped_`` says "
              "which ended it). With ``max_epochs=None`` that is at most 10,000 optimizer steps and at least 10 "
              "epochs: 25 epochs on MNIST, up to 2,500 on 500 rows (a linear autoencoder there settles within "
              "0.7 degree of PCA's plane after 1,350-1,860 epochs; 10 epochs left it 81 degrees away).",
              type="int or 'auto'",
              flag=Flag(parse=_epochs_flag, metavar="N|auto")),
        Param("tol", 1e-4, non_negative_float(),
              "``epochs=\"auto\"``: the relative improvement of the loss that counts as progress (1e-4: 0.01% of "
              "the best loss so far; scikit-learn's MLP takes 1e-4 absolute).", type="float"),
        Param("n_iter_no_change", 10, positive_int(),
              "``epochs=\"auto\"``: epochs without progress before training stops.", type="int"),
        Param("max_epochs", None, [*positive_int(), None],
              "``epochs=\"auto\"``: the most epochs it trains; None: enough epochs for 10,000 optimizer steps, at "
              "least 10 (``AUTO_STEPS``; 25 epochs for 60,000 rows in batches of 150).", type="int or None",
              flag=Flag(parse=int)),
        Param("lr_schedule", "constant", [str],
              "Learning-rate schedule, the rate set at each epoch's start (:mod:`aekit.training.schedules`): "
              "``constant``, ``step[:EVERY:GAMMA]``, ``cosine[:WARMUP]``, ``onecycle[:PCT:DIV]``, "
              "``plateau[:PATIENCE:GAMMA]``; a resumed run gets the rates of the run it continues.", type="str"),
        Param("clip_grad_norm", None, [Interval(Real, 0, None, closed="neither"), None],
              "Scale each step's gradients down to this global L2 norm when they exceed it "
              "(``torch.nn.utils.clip_grad_norm_``); None: no clipping.", type="float or None",
              flag=Flag(parse=float)),
        Param("early_stopping", False, ["boolean"],
              "Hold out ``validation_fraction`` of X; stop after ``patience`` epochs without improvement and keep "
              "the best weights.", flag=Flag(action="store_true")),
        Param("validation_fraction", 0.1, [Interval(Real, 0, 1, closed="neither")],
              "Fraction of the rows held out for early stopping.", type="float"),
        Param("patience", 10, positive_int(), "Epochs without improvement before early stopping stops.", type="int"),
        Param("restore_best_weights", True, ["boolean"],
              "With early stopping: end with the weights of the best validation epoch (True, Keras' "
              "``restore_best_weights``) or of the last one; kept in checkpoints, so a resumed run restores the "
              "same.", flag=Flag("--keep-last-weights", action="store_false")),
        Param("random_state", None, ["random_state"],
              "Seeds initialisation, shuffling and noise; an int makes a CPU run repeatable bit for bit (the "
              "command line's ``--seed`` defaults to 0).", flag=Flag("--seed", parse=int, cli_default=0)),
        Param("device", "auto", [str, None], "\"auto\" (CUDA if available), \"cpu\", \"cuda\", \"cuda:N\".",
              type="str", flag=Flag(parse=str, cli_default=None)),
        Param("checkpoint_dir", None, [str, os.PathLike, None],
              "If set, a checkpoint is written there after every epoch (and every ``checkpoint_every`` batches, "
              "and on SIGINT/SIGTERM); ``aekit.load`` + ``warm_start`` resumes from the exact batch.",
              type="str or None", flag=None),
        Param("checkpoint_every", 0, non_negative_int(),
              "Also checkpoint every this many batches inside an epoch (0: at epoch ends only).", type="int"),
        Param("precision", "32-true", [StrOptions({"32-true", "bf16-mixed", "16-mixed"})],
              "Numeric precision (Lightning's names): ``\"32-true\"`` float32; ``\"bf16-mixed\"`` bfloat16 matrix "
              "multiplies and convolutions with float32 master weights, optimizer state and loss reduction (CPUs "
              "with bfloat16 units, or CUDA; refused where it would be slow); ``\"16-mixed\"`` float16 with loss "
              "scaling (CUDA). Inference follows it; checkpoints stay float32 and load in any precision."),
        Param("n_jobs", None, [Interval(Integral, 1, None, closed="left"), Options(Integral, {-1}), None],
              "CPU threads: None picks one thread for a training step under 100 M multiply-adds (small models: "
              "a second thread gains at most 1.5x on an idle machine and loses 3-10x when another process uses a "
              "core), torch's threads otherwise; -1: every core; an int: that many. The choice depends on the "
              "configuration only, so seeded runs stay repeatable.", type="int or None", flag=Flag("--threads", parse=int)),
        Param("callbacks", None, [list, tuple, None],
              "Objects called during training (:mod:`aekit.callbacks`): ``on_train_begin(estimator)``, "
              "``on_epoch_begin(estimator, epoch)``, ``on_epoch_end(estimator, logs)`` (True stops training), "
              "``on_train_end(estimator)``, each optional; e.g. ``aekit.callbacks.TensorBoardLogger(\"runs/tb\")``. "
              "Not saved in checkpoints.", type="list or None", flag=None),
        Param("warm_start", False, ["boolean"],
              "Continue training a fitted (or loaded) model instead of starting again.", flag=None),
        Param("verbose", 0, ["verbose"], "Progress bar and one line per epoch when > 0.", flag=None),
    )

    def check(self, est: Any, X: np.ndarray) -> None:
        from ..callbacks import check_callbacks
        from ..training.schedules import parse_schedule

        parse_schedule(est.lr_schedule)
        check_callbacks(est.callbacks)


class Layers(Part):
    """The stacked dense layers of the encoder (the decoder mirrors them)."""

    title = "layers and loss"

    params = (
        Param("hidden_layers", (300, 150), ["array-like"],
              "Sizes of the encoder's layers; the last is the coding layer (``(300, 150)`` on MNIST gives "
              "784-300-150-300-784).", type="sequence of int", flag=Flag("--hidden", parse=int_list),
              small=(8, 4)),
        Param("activation", "elu", [LiveOptions(_activations)],
              "Hidden activation (one of ``aekit.nn.layers.ACTIVATIONS``); ``\"linear\"`` with one hidden layer is "
              "a linear autoencoder (it spans PCA's subspace).", type="str"),
        Param("init", "auto", [StrOptions({"auto", "he", "lecun", "xavier"})],
              "Weight initialisation; ``\"auto\"``: the one measured best for the activation "
              "(``aekit.nn.layers.AUTO_INIT``: lecun for elu and tanh, xavier for relu, selu and linear, he for "
              "sigmoid; on MNIST, 5 epochs, ELU with lecun reached a test MSE of 0.0038 against 0.0064 with the "
              "book's he, ReLU with xavier 0.0067 against 0.0171)."),
    )

    @staticmethod
    def resolved_init(est: Any) -> str:
        """The init ``est`` builds its model with: ``init``, or for ``"auto"`` the activation's measured best."""
        from ..nn.layers import default_init

        return default_init(est.activation) if est.init == "auto" else est.init


class TiedWeights(Part):
    title = "layers and loss"

    params = (
        Param("tie_weights", False, ["boolean"],
              "Decoder uses the encoder's weights transposed (own biases); halves the weights.",
              flag=Flag(action="store_true")),
    )


class CodingActivation(Part):
    title = "layers and loss"

    params = (
        Param("coding_activation", None, [LiveOptions(_activations), None],
              "Activation of the coding layer; None means ``activation`` (sigmoid when ``sparsity`` is KL).",
              type="str or None"),
    )


class Reconstruction(Part):
    """The reconstruction loss; ``losses`` are the ones this family accepts. With ``auto`` (the loss for data
    outside [0, 1]) the family also accepts ``loss="auto"``: ``"bce"`` (a Bernoulli decoder) when X lies in [0, 1],
    else ``auto``. The loss trained with is the fitted ``loss_``."""

    title = "layers and loss"
    fitted = ("loss_",)

    def __init__(self, loss: str = "mse", losses: Sequence[str] = ("mse", "bce"), doc: str | None = None,
                 auto: str | None = None) -> None:
        self.auto = auto
        options = {*losses, "auto"} if auto else set(losses)
        text = doc or ("Reconstruction loss: ``\"mse\"``, or ``\"bce\"`` (cross-entropy from logits, sigmoid "
                       "outputs; needs X in [0, 1]).")
        if auto:
            text += (f" ``\"auto\"``: ``\"bce\"`` when X lies in [0, 1] (intensities, e.g. images), else "
                     f"``\"{auto}\"``; the loss used is the fitted ``loss_``.")
        self._loss = Param("loss", loss, [StrOptions(options)], text)
        super().__init__()

    def _declared(self) -> tuple[Param, ...]:
        return (self._loss,)

    def resolve(self, est: Any, X: np.ndarray) -> dict[str, Any]:
        loss = est.loss
        if loss == "auto":
            loss = "bce" if X.size and X.min() >= 0 and X.max() <= 1 else self.auto
        return {"loss_": loss}

    def restore(self, est: Any, fitted: dict[str, Any], params: dict[str, Any]) -> None:
        est.loss_ = fitted.get("loss_", est.loss)  # checkpoints before "auto" existed name the loss itself

    def check(self, est: Any, X: np.ndarray) -> None:
        if est.loss_ == "bce" and (X.min() < 0 or X.max() > 1):
            raise DataError(
                f"loss='bce' needs X in [0, 1], but X ranges over [{X.min():.3g}, {X.max():.3g}]; "
                "scale it (e.g. MinMaxScaler) or use loss='mse'"
            )


def output_activation(est: Any) -> str:
    """The output activation ``est`` trains with: its ``output_activation`` if it has one that is not "auto",
    else sigmoid for a fitted ``loss_="bce"`` (BCE from logits), linear otherwise."""
    chosen = est.get_params(deep=False).get("output_activation", "auto")
    if chosen != "auto":
        return chosen
    return "sigmoid" if est.loss_ == "bce" else "linear"


class OutputActivation(Part):
    title = "layers and loss"

    params = (
        Param("output_activation", "auto", [StrOptions({"auto", "linear", "sigmoid"})],
              "``\"auto\"`` is sigmoid for ``loss=\"bce\"`` and linear for ``loss=\"mse\"``."),
    )


class Regularizers(Part):
    """Input corruption (denoising) and penalties on the codings; they compose with each other and with any
    architecture. Winner-take-all is a coding filter inside the model (``wta``), read by the family."""

    title = "regularization (compose freely)"

    params = (
        Param("noise", None, [str, None],
              "Denoising: corrupt the inputs in training only, reconstruct the clean ones: ``\"gaussian:STD\"``, "
              "``\"dropout:RATE\"`` (inverted dropout, the book's), ``\"mask:RATE\"`` (zeroing), "
              "``\"saltpepper:RATE\"``.", type="str or None", flag=Flag(parse=str)),
        Param("sparsity", None, [str, None],
              "``\"kl:TARGET:WEIGHT\"`` (KL between TARGET and each coding unit's batch-mean activation, summed over "
              "units) or ``\"l1:WEIGHT\"`` (L1 on the codings).", type="str or None", flag=Flag(parse=str)),
        Param("contractive", None, [Interval(Real, 0, None, closed="left"), str, None],
              "Weight of the squared Frobenius norm of d(codings)/d(inputs); ``\"WEIGHT:METHOD\"`` picks the "
              "method (auto: the closed form for one sigmoid coding layer, else Hutchinson's estimate; closed, "
              "exact, hutchinson; see :class:`aekit.losses.penalties.Contractive`).",
              type="float, str or None", flag=Flag(parse=str)),
        Param("wta", None, [Interval(Real, 0, 1, closed="right"), None],
              "Winner-take-all lifetime sparsity rate: in training each coding unit keeps its top "
              "``ceil(wta * batch)`` activations across the batch. With ``arch=\"conv\"`` and no ``coding_size`` "
              "it is spatial + lifetime (conv-WTA): each feature map keeps only its maximum per sample, then its "
              "``ceil(wta * batch)`` largest maxima across the batch (``wta=1``: spatial sparsity alone). Identity "
              "at inference.", type="float or None", flag=Flag(parse=float)),
    )

    def check(self, est: Any, X: np.ndarray) -> None:
        self.corruption(est)  # malformed specs fail before any training
        self.penalties(est)

    def corruption(self, est: Any) -> Callable | None:
        from ..data.corruption import parse_noise

        return parse_noise(est.noise)

    def penalties(self, est: Any) -> list:
        from ..losses.penalties import Contractive, parse_sparsity

        penalties = [parse_sparsity(est.sparsity)]
        if est.contractive:
            weight, _, method = str(est.contractive).partition(":")
            try:
                penalties.append(Contractive(float(weight), method or "auto"))
            except ValueError:
                raise ConfigError(f"contractive={est.contractive!r} is not understood; use a weight like 1e-3 or "
                                  "'WEIGHT:METHOD' with METHOD auto, closed, exact or hutchinson") from None
        return [p for p in penalties if p is not None]

    @staticmethod
    def coding_activation(est: Any) -> str | None:
        """The coding layer's activation: ``est.coding_activation``, or sigmoid when KL sparsity asks for mean
        activations in (0, 1)."""
        chosen = est.coding_activation
        if chosen is None and str(est.sparsity or "").startswith("kl"):
            return "sigmoid"
        return chosen


class Greedy(Part):
    """Greedy layer-wise training, one layer pair at a time (:mod:`aekit.training.greedy`), before optional
    end-to-end fine-tuning."""

    title = "greedy layer-wise training"

    params = (
        Param("pretrain", None, [StrOptions({"greedy"}), None],
              "``\"greedy\"``: train one layer pair at a time first (then ``fine_tune_epochs`` end-to-end epochs; "
              "``epochs`` is then not used).", type="{'greedy'} or None", flag=None),
        Param("greedy_strategy", "phases", [StrOptions({"phases", "separate"})],
              "``\"phases\"``: one model, lower layers frozen; ``\"separate\"``: one shallow autoencoder per pair, "
              "stacked.", flag=Flag("--greedy", parse=str, implies={"pretrain": "greedy"})),
        Param("phase_epochs", None, [Interval(Integral, 0, None, closed="left"), "array-like", None],
              "Epochs per phase (one value is used for every phase; None means ``epochs``).",
              type="int, sequence of int or None", flag=Flag(parse=int_list)),
        Param("phase_batch_sizes", None, [Interval(Integral, 1, None, closed="left"), "array-like", None],
              "Batch size per phase (None means ``batch_size``).", type="int, sequence of int or None",
              flag=Flag(parse=int_list)),
        Param("phase_learning_rates", None, [Interval(Real, 0, None, closed="neither"), "array-like", None],
              "Learning rate per phase (None means ``learning_rate``).", type="float, sequence of float or None",
              flag=Flag("--phase-lrs", parse=float_list)),
        Param("cache_codings", True, ["boolean"],
              "Compute the frozen layers' outputs once per phase instead of at every batch.",
              flag=Flag("--no-cache", action="store_false")),
        Param("fine_tune_epochs", 0, non_negative_int(), "End-to-end epochs after greedy pretraining.", type="int"),
    )

    def active(self, est: Any) -> bool:
        return est.pretrain == "greedy"

    def phases(self, est: Any) -> list:
        from ..training.greedy import Phase

        n = est.model_.n_pairs if hasattr(est, "model_") else len(est.hidden_layers)

        def per_phase(values: Any, default: Any, name: str) -> list:
            values = [default] if values is None else list(np.ravel(values))
            if len(values) == 1:
                values = values * n
            if len(values) != n:
                layers = (f"channels={tuple(est.channels)}, coding_size={ConvCoding.resolved(est)}" if est.arch == "conv"
                          else f"hidden_layers={tuple(est.hidden_layers)}")
                raise DataError(f"{name} has {len(values)} values, but the model has {n} layer pairs ({layers}); "
                                f"give one value or {n}")
            return values

        return [Phase(int(e), int(b), float(lr)) for e, b, lr in zip(
            per_phase(est.phase_epochs, est.epochs, "phase_epochs"),
            per_phase(est.phase_batch_sizes, est.batch_size, "phase_batch_sizes"),
            per_phase(est.phase_learning_rates, est.learning_rate, "phase_learning_rates"))]

    def check(self, est: Any, X: np.ndarray) -> None:
        if est.pretrain == "greedy":
            self.phases(est)

    def pretrain(self, est, X, generator, start, resume_optimizer, on_checkpoint, stop_requested) -> None:
        if est.pretrain != "greedy":
            return
        from ..training.greedy import greedy_pretrain

        est.shallow_autoencoders_ = greedy_pretrain(
            est.model_, X, strategy=est.greedy_strategy, phases=self.phases(est), make_step=est._reconstruction_step,
            loss=est.loss_, generator=generator, cache=est.cache_codings, seed=est.seed_, history=est.history_,
            progress=bool(est.verbose), start=start, resume_optimizer=resume_optimizer, on_checkpoint=on_checkpoint,
            checkpoint_every=est.checkpoint_every, stop_requested=stop_requested,
        )

    def end_to_end_epochs(self, est: Any) -> int | None:
        return est.fine_tune_epochs if est.pretrain == "greedy" else None

    def record_extra(self, est: Any) -> dict[str, Any] | None:
        return {"phase": "fine-tune"} if est.pretrain == "greedy" else None


class ImageShape(Part):
    title = "layers and loss"

    params = (
        Param("image_shape", None, ["array-like", None],
              "Shape of one sample as an image, (H, W) or (C, H, W): for figures, and the input shape of a conv "
              "model fed flat rows (rows stay flat at the estimator's boundary).", type="tuple or None",
              flag=Flag("--image-shape", parse=int_list, cli_default=UNSET)),
    )


class Conv(Part):
    """A convolutional encoder and its transposed-convolution mirror (``arch="conv"``). X may then be images
    (n, C, H, W) or (n, H, W); the model takes flat rows."""

    title = "convolutional (--arch conv; --hidden and --tie-weights are not used)"
    variants = ({"arch": "conv", "image_shape": (4, 4)},)

    params = (
        Param("arch", "dense", [StrOptions({"dense", "conv"})],
              "``\"conv\"``: convolutional encoder (``channels``, ``kernel_sizes``, ``strides``, ``pool_sizes``; "
              "padding ``kernel // 2``) and its mirror transposed-convolution decoder, whose padding is solved so "
              "that every size (odd ones included, e.g. 7x9) comes back exactly. Needs ``image_shape`` for flat "
              "rows, or images ``(n, C, H, W)`` / ``(n, H, W)`` as X."),
        Param("channels", (16, 32, 64), ["array-like"], "Conv only: output channels of each conv layer.",
              type="sequence of int", flag=Flag(parse=int_list), small=(4,)),
        Param("kernel_sizes", 3, [Interval(Integral, 1, None, closed="left"), "array-like"],
              "Conv only: kernel size of each conv layer (one value applies to all).", type="int or sequence of int",
              flag=Flag(parse=one_or_many)),
        Param("strides", 2, [Interval(Integral, 1, None, closed="left"), "array-like"],
              "Conv only: stride of each conv layer (one value applies to all).", type="int or sequence of int",
              flag=Flag(parse=one_or_many)),
        Param("pool_sizes", 1, [Interval(Integral, 1, None, closed="left"), "array-like"],
              "Conv only: max-pooling after each conv (1: none); its mirror is one transposed convolution with "
              "stride ``stride * pool``.", type="int or sequence of int", flag=Flag(parse=one_or_many)),
    )

    def active(self, est: Any) -> bool:
        return est.arch == "conv"

    @staticmethod
    def image_shape(est: Any) -> tuple[int, ...]:
        from ..nn.conv import image_shape3

        shape = getattr(est, "_fit_image_shape", None) or (
            None if est.image_shape is None else image_shape3(est.image_shape))
        if shape is None:
            raise DataError("arch='conv' needs the shape of one image: pass image_shape=(H, W) or (C, H, W) with "
                            "flat rows (on the command line: --image-shape H,W or C,H,W), or X as images of shape "
                            "(n, C, H, W) or (n, H, W)")
        return shape

    def config(self, est: Any) -> dict[str, Any]:
        """The conv model's layer settings (empty for ``arch="dense"``)."""
        if est.arch != "conv":
            return {}
        return {"image_shape": self.image_shape(est), "channels": ints(est.channels),
                "kernel_sizes": ints(est.kernel_sizes), "strides": ints(est.strides),
                "pool_sizes": ints(est.pool_sizes)}

    def rows(self, est: Any, X: Any, reset: bool) -> Any:
        """Image stacks as flat rows, after checking their shape against the model's; other X unchanged."""
        if est.arch != "conv":
            return X
        from sklearn.utils.validation import check_is_fitted

        from ..nn.conv import image_shape3

        if reset:
            est._fit_image_shape = None
        ndim = getattr(X, "ndim", None)
        if ndim not in (3, 4):
            return X
        shape = image_shape3(X.shape[1:])
        if reset:
            expected = None if est.image_shape is None else image_shape3(est.image_shape)
        else:
            check_is_fitted(est, "model_")
            expected = tuple(est.model_.config["image_shape"])
        if expected is not None and shape != expected:
            raise DataError(f"X holds images of shape {tuple(X.shape[1:])}, but the model expects {expected} "
                            "(C, H, W), channels first; for (n, H, W, C) arrays use X.transpose(0, 3, 1, 2)")
        if reset:
            est._fit_image_shape = shape
        return np.asarray(X).reshape(len(X), -1)


AUTO_CODING_SIZE = 30  # the book's convolutional autoencoder's coding (Géron ch. 15)


_coding_size_flag = word_or_int({"auto": "auto", "none": None, "None": None}, "coding size", minimum=1)


class ConvCoding(Part):
    title = "convolutional (--arch conv; --hidden and --tie-weights are not used)"

    def active(self, est: Any) -> bool:
        return est.arch == "conv"

    params = (
        Param("coding_size", "auto", [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"}), None],
              "Conv only: a dense coding layer of this size over the last feature maps; None makes the flattened "
              "last maps the codings (as conv-WTA needs); ``\"auto\"``: 30 (the book's coding; the default maps "
              "of a 28x28 image flatten to 1,024 values, more than its 784 pixels), or the maps with ``wta``.",
              type="int, 'auto' or None", flag=Flag(parse=_coding_size_flag, metavar="N|auto|none")),
    )

    @staticmethod
    def resolved(est: Any) -> int | None:
        """The coding size ``coding_size="auto"`` stands for: 30, or None (the maps) under winner-take-all."""
        if est.coding_size == "auto":
            return None if est.wta else AUTO_CODING_SIZE
        return est.coding_size


class Binarization(Part):
    """Training on binarized X (Bernoulli draws of intensities in [0, 1]); the setting used is the fitted
    ``binarize_``."""

    title = "layers and loss"
    fitted = ("binarize_",)

    params = (
        Param("binarize", "auto", [StrOptions({"auto", "static", "dynamic"}), None],
              "Train on binarized X: ``\"static\"`` one fixed Bernoulli draw (seeded by ``random_state``), "
              "``\"dynamic\"`` a fresh draw per batch (Burda et al. 2015), None: the intensities themselves. "
              "``\"auto\"``: ``\"dynamic\"`` for a Bernoulli decoder (a fitted ``loss_`` of ``\"bce\"``: its "
              "likelihood is one of binary data, and on MNIST 30 epochs reach 89.0 nats instead of 94.5), else "
              "None. Evaluate on a statically binarized copy, ``aekit.data.binarize(X_test, seed)`` (``aekit "
              "evaluate --nll`` does).", type="{'auto', 'static', 'dynamic'} or None", flag=Flag(parse=_none_or_word)),
    )

    def resolve(self, est: Any, X: np.ndarray) -> dict[str, Any]:
        value = est.binarize
        if value == "auto":
            value = "dynamic" if getattr(est, "loss_", None) == "bce" else None
        return {"binarize_": value}

    def restore(self, est: Any, fitted: dict[str, Any], params: dict[str, Any]) -> None:
        # checkpoints from before "auto" existed name the setting itself
        est.binarize_ = fitted.get("binarize_", None if est.binarize == "auto" else est.binarize)

    def check(self, est: Any, X: np.ndarray) -> None:
        if est.binarize_ and (X.min() < 0 or X.max() > 1):
            raise DataError(f"binarize={est.binarize_!r} needs X in [0, 1] (intensities as probabilities), but X "
                            f"ranges over [{X.min():.3g}, {X.max():.3g}]; scale it first (e.g. MinMaxScaler)")

    def training_rows(self, est: Any, X: np.ndarray) -> np.ndarray:
        if est.binarize_ == "static":  # one draw, the same on every (re)start of this run
            from ..data.binarize import binarize

            return binarize(X, seed=est.seed_)
        return X


def latent_dim(default: int) -> Param:
    """The size of a generative family's codings (one declaration, shared by every family that has it)."""
    return Param("latent_dim", default, positive_int(), "Size of the codings (the latent space).", type="int",
                 small=2)


__all__ = ["Binarization", "CodingActivation", "Conv", "ConvCoding", "Greedy", "ImageShape", "Layers",
           "OutputActivation", "Part", "Reconstruction", "Regularizers", "TiedWeights", "Training", "UNSET",
           "float_list", "int_list", "ints", "latent_dim", "non_negative_int_list", "one_or_many", "output_activation"]
