"""aekit.data: IDX reader, named datasets (search order, verified download), user files."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import struct
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import aekit
from aekit.data import available_datasets, load_dataset, load_file, read_idx, register_dataset
from aekit.data import datasets
from aekit.errors import DataError

IDX_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}
STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, IDX_CODES[array.dtype.type], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_fake_dataset(folder: Path, n_train: int, n_test: int = 3, gz: bool = True) -> dict[str, bytes]:
    """Write 4 tiny MNIST-like files (4x5 images); return their uncompressed content by stem."""
    rng = np.random.default_rng(n_train)
    content = {
        STEMS[0]: idx_bytes(rng.integers(0, 256, (n_train, 4, 5), dtype=np.uint8)),
        STEMS[1]: idx_bytes(np.arange(n_train, dtype=np.uint8) % 10),
        STEMS[2]: idx_bytes(rng.integers(0, 256, (n_test, 4, 5), dtype=np.uint8)),
        STEMS[3]: idx_bytes(np.arange(n_test, dtype=np.uint8) % 10),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for stem, data in content.items():
        (folder / (stem + ".gz" if gz else stem)).write_bytes(gzip.compress(data) if gz else data)
    return content


# ---------------------------------------------------------------- IDX


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("dtype", list(IDX_CODES))
def test_read_idx_round_trip(tmp_path, dtype, gz):
    array = (np.arange(2 * 3 * 4) - 7).astype(dtype).reshape(2, 3, 4)
    data = idx_bytes(array)
    path = tmp_path / "a.idx"
    path.write_bytes(gzip.compress(data) if gz else data)  # gzip found by content, not by name
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype).newbyteorder("=") and out.dtype.isnative
    np.testing.assert_array_equal(out, array)
    out[0, 0, 0] = 1  # writable


def test_read_idx_named_gz_but_plain(tmp_path):
    path = tmp_path / "labels.gz"
    path.write_bytes(idx_bytes(np.arange(5, dtype=np.uint8)))
    np.testing.assert_array_equal(read_idx(path), np.arange(5))


@pytest.mark.parametrize("cut", [1, 4 * 3 + 2, 30])
def test_read_idx_truncated(tmp_path, cut):
    data = idx_bytes(np.zeros((2, 3, 4), np.int16))
    path = tmp_path / "t.idx"
    path.write_bytes(data[:-cut])
    with pytest.raises(DataError, match=r"t\.idx is truncated"):
        read_idx(path)


def test_read_idx_trailing_bytes_and_bad_gzip(tmp_path):
    data = idx_bytes(np.zeros(4, np.uint8))
    (tmp_path / "long.idx").write_bytes(data + b"\0")
    with pytest.raises(DataError, match="trailing bytes"):
        read_idx(tmp_path / "long.idx")
    (tmp_path / "cut.gz").write_bytes(gzip.compress(data)[:-6])
    with pytest.raises(DataError, match="corrupt or truncated gzip"):
        read_idx(tmp_path / "cut.gz")


@pytest.mark.parametrize("head", [b"\x01\x00\x08\x01", b"\x00\x00\x07\x01", b"PK", b""])
def test_read_idx_bad_magic(tmp_path, head):
    path = tmp_path / "bad.idx"
    path.write_bytes(head + b"\0" * 8)
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(path)


def test_read_idx_missing(tmp_path):
    with pytest.raises(DataError, match="No such file"):
        read_idx(tmp_path / "nope")


# ---------------------------------------------------------------- named datasets


def test_digits():
    X_train, y_train, X_test, y_test, image_shape = load_dataset("digits")
    assert X_train.shape == (1437, 64) and X_test.shape == (360, 64) and image_shape == (8, 8)
    for X in (X_train, X_test):
        assert X.dtype == np.float32 and X.flags.c_contiguous and X.min() == 0 and X.max() == 1
    assert y_train.dtype == y_test.dtype == np.int64
    assert set(np.bincount(y_test)) <= {35, 36, 37}  # stratified
    again = load_dataset("digits")
    np.testing.assert_array_equal(again.X_train, X_train)
    np.testing.assert_array_equal(again.y_test, y_test)


@pytest.fixture(scope="module")
def shared_data_dir() -> Path:
    root = os.environ.get("AEKIT_DATA_DIR")
    assert root, "AEKIT_DATA_DIR is not set: set AEKIT_DATA_DIR=../shared/data (the folder holding mnist/ and " \
                 "fashion-mnist/) to run these tests"
    return Path(root)


@pytest.mark.parametrize("name, first_labels", [("mnist", (5, 7)), ("fashion-mnist", (9, 9))])
def test_idx_datasets_from_data_dir(shared_data_dir, name, first_labels):
    assert (shared_data_dir / name).is_dir(), f"{shared_data_dir / name} is missing"
    X_train, y_train, X_test, y_test, image_shape = load_dataset(name, download=False)
    assert X_train.shape == (60000, 784) and X_test.shape == (10000, 784) and image_shape == (28, 28)
    for X in (X_train, X_test):
        assert X.dtype == np.float32 and X.flags.c_contiguous and X.min() == 0 and X.max() == 1
    for y in (y_train, y_test):
        assert y.dtype == np.int64 and set(np.unique(y)) == set(range(10))
    assert (y_train[0], y_test[0]) == first_labels


@pytest.fixture
def env(tmp_path, monkeypatch) -> dict[str, Path]:
    """Hermetic search folders: nothing found anywhere until a test writes it."""
    folders = {"data": tmp_path / "data", "cache": tmp_path / "cache", "system": tmp_path / "system"}
    monkeypatch.setenv("AEKIT_DATA_DIR", str(folders["data"]))
    monkeypatch.setenv("AEKIT_CACHE_DIR", str(folders["cache"]))
    monkeypatch.setattr(datasets, "_SYSTEM_DIR", folders["system"])
    return folders


def test_search_order(env, tmp_path, monkeypatch):
    write_fake_dataset(env["system"] / "mnist", n_train=7)
    assert len(load_dataset("mnist", download=False).X_train) == 7
    write_fake_dataset(env["cache"] / "mnist", n_train=6, gz=False)
    assert len(load_dataset("mnist", download=False).X_train) == 6
    write_fake_dataset(env["data"] / "mnist", n_train=5)
    assert len(load_dataset("mnist", download=False).X_train) == 5
    write_fake_dataset(tmp_path / "mine", n_train=4)
    X_train, y_train, X_test, y_test, image_shape = load_dataset("mnist", data_dir=tmp_path / "mine")
    assert X_train.shape == (4, 20) and X_test.shape == (3, 20) and image_shape == (4, 5)
    assert y_train.tolist() == [0, 1, 2, 3] and 0 <= X_train.min() and X_train.max() <= 1
    write_fake_dataset(tmp_path / "root" / "mnist", n_train=2)
    assert len(load_dataset("mnist", data_dir=tmp_path / "root").X_train) == 2  # data_dir/<name> also works


def test_cache_folder_location(monkeypatch, tmp_path):
    monkeypatch.delenv("AEKIT_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert datasets._cache_folder("mnist") == tmp_path / "aekit" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert datasets._cache_folder("mnist") == Path.home() / ".cache" / "aekit" / "mnist"


def test_labels_count_mismatch(env):
    write_fake_dataset(env["data"] / "mnist", n_train=5)
    (env["data"] / "mnist" / f"{STEMS[1]}.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(4, np.uint8))))
    with pytest.raises(DataError, match="holds labels of shape \\(4,\\), but .* holds 5 images"):
        load_dataset("mnist", download=False)


def serve(monkeypatch, files: dict[str, bytes], failing_prefix: str = "") -> list[str]:
    """Replace urllib's urlopen: serve ``files`` by name, URLError for anything else. Returns the URLs asked."""
    asked: list[str] = []

    def urlopen(url: str, timeout: float | None = None) -> io.BytesIO:
        asked.append(url)
        name = url.rsplit("/", 1)[-1]
        if name not in files or (failing_prefix and url.startswith(failing_prefix)):
            raise urllib.error.URLError("network is unreachable")
        return io.BytesIO(files[name])

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return asked


def fake_download(env, monkeypatch, tmp_path, failing_prefix=""):
    content = write_fake_dataset(tmp_path / "server", n_train=5)
    monkeypatch.setitem(datasets._SHA256, "mnist", {s: hashlib.sha256(c).hexdigest() for s, c in content.items()})
    files = {p.name: p.read_bytes() for p in (tmp_path / "server").iterdir()}
    return serve(monkeypatch, files, failing_prefix)


def test_download_lands_in_cache(env, monkeypatch, tmp_path):
    first, second = datasets._MIRRORS["mnist"]
    asked = fake_download(env, monkeypatch, tmp_path, failing_prefix=first)
    X_train, y_train, X_test, y_test, image_shape = load_dataset("mnist")
    assert X_train.shape == (5, 20) and X_test.shape == (3, 20) and image_shape == (4, 5)
    assert sorted(p.name for p in (env["cache"] / "mnist").iterdir()) == sorted(f"{s}.gz" for s in STEMS)
    assert [url for url in asked if url.startswith(second)] == [f"{second}{s}.gz" for s in STEMS]
    asked.clear()
    load_dataset("mnist")  # now found in the cache
    assert asked == []


def test_download_checksum_mismatch(env, monkeypatch, tmp_path):
    fake_download(env, monkeypatch, tmp_path)
    monkeypatch.setitem(datasets._SHA256, "mnist", dict.fromkeys(STEMS, "0" * 64))
    with pytest.raises(DataError, match="SHA-256 mismatch"):
        load_dataset("mnist")
    assert list((env["cache"] / "mnist").iterdir()) == []


def test_download_write_failure_leaves_nothing(env, monkeypatch, tmp_path):
    fake_download(env, monkeypatch, tmp_path)

    def replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(DataError, match="No space left"):
        load_dataset("mnist")
    assert list((env["cache"] / "mnist").iterdir()) == []


def test_offline(env, monkeypatch):
    asked = serve(monkeypatch, {})
    with pytest.raises(DataError, match="AEKIT_DATA_DIR to a folder containing mnist/") as info:
        load_dataset("mnist")
    assert "network is unreachable" in str(info.value) and "connect to the internet" in str(info.value)
    for folder in (env["data"], env["cache"], env["system"]):
        assert str(folder / "mnist") in str(info.value)
    assert asked and not list((env["cache"] / "mnist").iterdir())
    asked.clear()
    with pytest.raises(DataError, match="not found.*download=True"):
        load_dataset("fashion-mnist", download=False)
    assert asked == []


def test_registry(monkeypatch):
    assert {"digits", "mnist", "fashion-mnist"} <= set(available_datasets())
    with pytest.raises(DataError, match="Unknown dataset 'mnsit'; available datasets: .*digits.*mnist"):
        load_dataset("mnsit")
    with pytest.raises(ValueError, match="already registered"):
        register_dataset("digits")(lambda data_dir, download: None)
    monkeypatch.setattr(datasets.DATASETS, "_entries", dict(datasets.DATASETS._entries))
    tiny = datasets.Dataset(*[np.zeros((1, 1), np.float32), np.zeros(1, np.int64)] * 2, (1, 1))
    register_dataset("tiny")(lambda data_dir, download: tiny)
    assert load_dataset("tiny") is tiny and "tiny" in available_datasets()


# ---------------------------------------------------------------- user files


def test_npy_table_kept_as_is(tmp_path):
    X = np.array([[0.5, -3.0, 1e6], [np.nan, 2.0, 0.0]])
    np.save(tmp_path / "x.npy", X)
    out, y, image_shape = load_file(tmp_path / "x.npy")
    assert out.dtype == np.float32 and y is None and image_shape is None
    np.testing.assert_array_equal(out, X.astype(np.float32))  # not rescaled, NaN kept


@pytest.mark.parametrize("shape, image_shape", [
    ((2, 4, 5), (4, 5)), ((2, 4, 5, 3), (3, 4, 5)), ((2, 4, 5, 1), (4, 5)), ((2, 3, 4, 5), (3, 4, 5)),
    ((2, 1, 4, 5), (4, 5)),
])
def test_npy_image_stacks(tmp_path, shape, image_shape):
    stack = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    np.save(tmp_path / "s.npy", stack)
    X, y, got = load_file(tmp_path / "s.npy")
    assert got == image_shape and X.shape == (2, int(np.prod(image_shape))) and X.flags.c_contiguous
    channels_first = stack.transpose(0, 3, 1, 2) if shape[-1] in (1, 3) else stack
    np.testing.assert_allclose(X, channels_first.reshape(2, -1) / 255, rtol=1e-6)


def test_npy_bool_and_int(tmp_path):
    np.save(tmp_path / "b.npy", np.array([[True, False]]))
    np.save(tmp_path / "i.npy", np.array([[300, -2]], dtype=np.int64))
    assert load_file(tmp_path / "b.npy")[0].tolist() == [[1.0, 0.0]]
    assert load_file(tmp_path / "i.npy")[0].tolist() == [[300.0, -2.0]]


@pytest.mark.parametrize("array, message", [
    (np.ones((2, 2), complex), "complex data is not supported"),
    (np.array([["a", "b"]]), "only numbers"),
    (np.ones(3), "expected \\(n_samples, n_features\\)"),
    (np.ones((0, 3)), "is empty"),
])
def test_npy_refused(tmp_path, array, message):
    np.save(tmp_path / "r.npy", array)
    with pytest.raises(DataError, match=message):
        load_file(tmp_path / "r.npy")


class Payload:
    """Unpickling this creates a file: proof that code ran."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        return open, (str(self.target), "w")


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_object_arrays_never_unpickled(tmp_path, suffix):
    sentinel = tmp_path / "pwned"
    array = np.array([Payload(sentinel), Payload(sentinel)], dtype=object)
    path = tmp_path / f"evil{suffix}"
    np.save(path, array, allow_pickle=True) if suffix == ".npy" else np.savez(path, X=array)
    with pytest.raises(DataError, match="dtype=object"):
        load_file(path)
    assert not sentinel.exists()


def test_no_allow_pickle_in_source():
    import aekit.data

    for source in Path(aekit.data.__file__).parent.glob("*.py"):
        assert "allow_pickle=True" not in source.read_text(), source


def test_npz(tmp_path):
    X, labels = np.random.default_rng(0).random((4, 3)), np.array([0, 1, 1, 2], np.int32)
    np.savez(tmp_path / "a.npz", data=X, labels=labels, other=np.zeros(2))
    out, y, image_shape = load_file(tmp_path / "a.npz")
    np.testing.assert_array_equal(out, X.astype(np.float32))
    assert y.dtype == np.int64 and y.tolist() == [0, 1, 1, 2] and image_shape is None
    np.savez(tmp_path / "only.npz", np.zeros((2, 4, 4), np.uint8))
    assert load_file(tmp_path / "only.npz")[2] == (4, 4)
    np.savez(tmp_path / "short.npz", X=X, y=labels[:3])
    with pytest.raises(DataError, match="labels of shape \\(3,\\), but 4 samples"):
        load_file(tmp_path / "short.npz")
    np.savez(tmp_path / "unnamed.npz", a=X, b=X)
    with pytest.raises(DataError, match="store the samples under 'X'"):
        load_file(tmp_path / "unnamed.npz")


def test_csv_header_and_label_column(tmp_path):
    (tmp_path / "t.csv").write_text('f1,f2,"label"\n0.5,1e3,2\n\n-1,nan,0\n')
    X, y, image_shape = load_file(tmp_path / "t.csv", label_column="label")
    np.testing.assert_array_equal(X, np.array([[0.5, 1000], [-1, np.nan]], np.float32))
    assert y.dtype == np.int64 and y.tolist() == [2, 0] and image_shape is None
    X, y, _ = load_file(tmp_path / "t.csv", label_column=0)
    assert X.tolist() == [[1000, 2], [pytest.approx(np.nan, nan_ok=True), 0]] and y.tolist() == [0.5, -1]
    X, y, _ = load_file(tmp_path / "t.csv")
    assert X.shape == (2, 3) and y is None
    with pytest.raises(DataError, match="no column named 'target': its columns are"):
        load_file(tmp_path / "t.csv", label_column="target")
    with pytest.raises(DataError, match="label_column=3 is out of range"):
        load_file(tmp_path / "t.csv", label_column=3)


@pytest.mark.parametrize("name, text", [
    ("plain.csv", "1,2\n3,4\n"), ("t.tsv", "1\t2\n3\t4\n"), ("semi.txt", "1;2\n3;4\n"), ("ws.txt", "1 2\n 3   4\n"),
])
def test_tables_without_header(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    X, y, _ = load_file(tmp_path / name, label_column=-1)
    assert X.tolist() == [[1], [3]] and y.tolist() == [2, 4]


@pytest.mark.parametrize("text, message", [
    ("a,b\n1,2\n3,x\n", "row 3, column 2 \\('b'\\): 'x' is not a number"),
    ("1,2\n3,-x\n", "row 2, column 2: '-x' is not a number"),
    ("1,2\n3,4,5\n", "row 2 has 3 columns, but the rows above have 2"),
    ("", "is empty"),
    ("a,b\n", "no rows of numbers"),
])
def test_csv_errors(tmp_path, text, message):
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(DataError, match=message):
        load_file(tmp_path / "bad.csv")


def test_missing_cells_read_as_nan_and_estimators_say_so(tmp_path):
    """Tables as users have them: empty, NA, ? cells are missing values (NaN), a label column may hold words;
    what trains on them then refuses the NaN rows by name (the anomaly detector can impute them)."""
    (tmp_path / "t.csv").write_text("a,b,c,kind\n1,2,3,ok\n4,,6,odd\nNA,8,?,ok\n10,11,12,ok\n")
    X, y, _ = load_file(tmp_path / "t.csv", label_column="kind")
    assert np.isnan(X).sum() == 3 and np.isnan(X[1, 1]) and np.isnan(X[2, 0]) and np.isnan(X[2, 2])
    assert y.tolist() == ["ok", "odd", "ok", "ok"]
    with pytest.raises(ValueError, match="NaN"):  # scikit-learn's message: "Input X contains NaN"
        aekit.Autoencoder(epochs=1).fit(X)
    with pytest.raises(DataError, match=r"NaN .*\(row 1, 2\).*missing='impute'"):
        aekit.AnomalyDetector(epochs=1).fit(X)
    assert np.isfinite(aekit.AnomalyDetector(missing="impute", epochs=1).fit(X).score_samples(X)).all()


def save_image(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_image_folder_classes_grayscale(tmp_path):
    images = np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5) * 4
    save_image(tmp_path / "cat" / "b.png", images[1])
    save_image(tmp_path / "cat" / "a.png", images[0])
    save_image(tmp_path / "ant" / "x.bmp", images[2])
    (tmp_path / "cat" / "notes.txt").write_text("not an image")
    X, y, image_shape = load_file(tmp_path)
    assert image_shape == (4, 5) and y.tolist() == [0, 1, 1]  # ant=0, cat=1; files sorted
    np.testing.assert_allclose(X, images[[2, 0, 1]].reshape(3, -1) / 255, rtol=1e-6)


def test_image_folder_flat_colour(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (4, 5, 3), dtype=np.uint8)
    gray = np.full((4, 5), 128, np.uint8)
    save_image(tmp_path / "1.png", rgb)
    save_image(tmp_path / "2.png", gray)
    X, y, image_shape = load_file(tmp_path)
    assert y is None and image_shape == (3, 4, 5) and X.dtype == np.float32
    np.testing.assert_allclose(X[0].reshape(3, 4, 5), rgb.transpose(2, 0, 1) / 255, rtol=1e-6)
    np.testing.assert_allclose(X[1], 128 / 255, rtol=1e-6)


def test_image_folder_errors(tmp_path):
    save_image(tmp_path / "mixed" / "a.png", np.zeros((4, 5), np.uint8))
    save_image(tmp_path / "mixed" / "b.png", np.zeros((5, 4), np.uint8))
    with pytest.raises(DataError, match="a.png is 4x5 .*b.png is 5x4"):
        load_file(tmp_path / "mixed")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no images"):
        load_file(tmp_path / "empty")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "x.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="Cannot read image .*x.png"):
        load_file(tmp_path / "broken")


def test_missing_and_unknown_files(tmp_path):
    with pytest.raises(DataError, match="No such file: .*nope.npy"):
        load_file(tmp_path / "nope.npy")
    (tmp_path / "x.parquet").write_bytes(b"")
    with pytest.raises(DataError, match="unknown file type '.parquet'"):
        load_file(tmp_path / "x.parquet")
    (tmp_path / "x.npy").write_bytes(b"garbage")
    with pytest.raises(DataError, match="x.npy: it is not a NumPy .npy/.npz file"):
        load_file(tmp_path / "x.npy")
