"""Where raw labelled datasets come from: a few named sources, each returning a `Dataset`.

Nothing here downloads. `digits` ships with scikit-learn, `mnist1d` is generated in code, and
`fashion_mnist` / `idx` read MNIST-format (IDX) files already on disk, e.g. from the Debian
package `dataset-fashion-mnist`.

Loaded datasets are cached in-process (several strategies and tests ask for the same one), so
the tensors of a returned `Dataset` are shared between callers: treat them as read-only and
never modify them in place (`x.clone()` first if you must).
"""

from __future__ import annotations

import difflib
import functools
import gzip
import math
import os
import random
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from lifelong.errors import UserError

if TYPE_CHECKING:
    import torch

FASHION_MNIST_DEFAULT_ROOT = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_ENV = "LIFELONG_FASHION_MNIST"
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
# The standard MNIST file names; each may be gzipped (name + ".gz") or uncompressed.
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
DIGITS_TEST_FRACTION = 0.25
MNIST1D_TRAIN, MNIST1D_TEST, MNIST1D_LENGTH = 4000, 1000, 40


class DataError(UserError, ValueError):
    """A dataset cannot be found, read, or makes no sense; the message says how to fix it."""


@dataclass(frozen=True, eq=False)
class Dataset:
    """A labelled dataset with a fixed train/test split.

    Inputs are float32, images as (N, C, H, W) with values in [0, 1], vectors as (N, D);
    targets are int64 in [0, n_classes). The tensors may be shared with other callers through
    the in-process cache: do not mutate them in place.
    """

    name: str
    x_train: torch.Tensor = field(repr=False)
    y_train: torch.Tensor = field(repr=False)
    x_test: torch.Tensor = field(repr=False)
    y_test: torch.Tensor = field(repr=False)
    n_classes: int
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.x_train) != len(self.y_train) or len(self.x_test) != len(self.y_test):
            raise DataError(f"dataset {self.name!r}: inputs and targets differ in length")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise DataError(f"dataset {self.name!r}: train inputs {tuple(self.x_train.shape[1:])}"
                            f" and test inputs {tuple(self.x_test.shape[1:])} differ in shape")
        if len(self.class_names) != self.n_classes:
            raise DataError(f"dataset {self.name!r}: {len(self.class_names)} class names for "
                            f"{self.n_classes} classes")

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one input, e.g. (1, 28, 28) or (40,)."""
        return tuple(self.x_train.shape[1:])


# --------------------------------------------------------------------------- IDX files

_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (the MNIST format), gzipped or not, as an array of its stored shape.

    Compression is recognised by the gzip magic bytes, not the file name. Raises `DataError`
    naming the file for a missing, corrupt or truncated file. A uint8 result is a read-only
    view of the file's bytes; wider types are converted to native byte order.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path}: corrupt or truncated gzip data ({e})") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in _IDX_DTYPES or raw[3] == 0:
        raise DataError(f"{path}: not an IDX file (first bytes {raw[:4].hex() or 'none'}; "
                        f"expected 00 00, a type code in "
                        f"{{{', '.join(f'{c:02x}' for c in _IDX_DTYPES)}}}, then the rank)")
    dtype, ndim = _IDX_DTYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: size mismatch: truncated header (a rank-{ndim} header is "
                        f"{header} bytes, got {len(raw)})")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    count = math.prod(dims)
    expected, got = count * dtype.itemsize, len(raw) - header
    if got != expected:
        what = "truncated" if got < expected else "trailing bytes"
        raise DataError(f"{path}: size mismatch ({what}): header says shape {dims} of {dtype.name}"
                        f", so expected {expected} data bytes, got {got}")
    array = np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(dims)
    return array if dtype.isnative else array.astype(dtype.newbyteorder("="))


def idx_shape(path: str | os.PathLike) -> tuple[int, ...]:
    """The shape an IDX file stores, read from its header alone (no data is loaded)."""
    path = Path(path)
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        stream = gzip.GzipFile(fileobj=raw) if gzipped else raw
        head = stream.read(4)
        if len(head) < 4 or head[:2] != b"\0\0":
            raise DataError(f"{path}: not an IDX file")
        return struct.unpack(f">{head[3]}I", stream.read(4 * head[3]))


def write_idx(path: str | os.PathLike, array: np.ndarray | torch.Tensor) -> Path:
    """Write `array` as an IDX file, gzipped when `path` ends in '.gz'. Returns the path.

    Supported element types: uint8, int8, int16, int32, float32, float64 (what IDX can hold).
    """
    import torch

    path = Path(path)
    array = array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
    codes = {dt.newbyteorder("="): code for code, dt in _IDX_DTYPES.items()}
    code = codes.get(array.dtype.newbyteorder("="))
    if code is None:
        raise DataError(f"write_idx: IDX cannot hold {array.dtype}; use one of "
                        f"{', '.join(sorted({d.name for d in codes}))}")
    if array.ndim == 0 or array.ndim > 255:
        raise DataError(f"write_idx: IDX needs 1 to 255 dimensions, got {array.ndim}")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(_IDX_DTYPES[code], copy=False).tobytes()
    path.write_bytes(gzip.compress(payload, mtime=0) if path.suffix == ".gz" else payload)
    return path


def find_idx_files(folder: Path) -> tuple[dict[str, Path], list[str]]:
    """The four standard files in `folder` (uncompressed preferred), and the stems missing."""
    found, missing = {}, []
    for key, stem in IDX_FILES.items():
        candidates = [folder / stem, folder / f"{stem}.gz"]
        hit = next((p for p in candidates if p.is_file()), None)
        if hit is None:
            missing.append(stem)
        else:
            found[key] = hit
    return found, missing


def _signature(files: dict[str, Path]) -> tuple:
    """A cache key that changes when any file is replaced or rewritten."""
    return tuple((str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns)
                 for p in files.values())


def _images_to_unit_float(array: np.ndarray, path: Path) -> torch.Tensor:
    """uint8 images to float32 in [0, 1], with a channel axis added to (N, H, W) stacks."""
    import torch

    if array.ndim not in (2, 3):
        raise DataError(f"{path}: expected images (N, H, W) or vectors (N, D), "
                        f"got shape {array.shape}")
    if array.dtype == np.uint8:
        x = torch.from_numpy(np.divide(array, np.float32(255), dtype=np.float32))
    elif array.dtype.kind == "f":
        if array.size and (array.min() < 0 or array.max() > 1):
            raise DataError(f"{path}: float inputs must lie in [0, 1], got "
                            f"[{array.min():.3g}, {array.max():.3g}]")
        x = torch.from_numpy(array.astype(np.float32))
    else:
        raise DataError(f"{path}: inputs must be uint8 (0..255) or float in [0, 1], "
                        f"got {array.dtype}")
    return x.unsqueeze(1) if x.ndim == 3 else x


def _labels(array: np.ndarray, path: Path) -> torch.Tensor:
    import torch

    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise DataError(f"{path}: labels must be a 1-D integer array, "
                        f"got shape {array.shape} of {array.dtype}")
    if array.size and array.min() < 0:
        raise DataError(f"{path}: negative label {array.min()}")
    return torch.from_numpy(array.astype(np.int64))


def _read_idx_folder(files: dict[str, Path]) -> dict[str, torch.Tensor]:
    tensors = {}
    for split in ("train", "test"):
        xs, ys = files[f"x_{split}"], files[f"y_{split}"]
        x, y = _images_to_unit_float(read_idx(xs), xs), _labels(read_idx(ys), ys)
        if len(x) != len(y):
            raise DataError(f"{xs} holds {len(x)} inputs but {ys} holds {len(y)} labels")
        tensors[f"x_{split}"], tensors[f"y_{split}"] = x, y
    return tensors


def _missing_files_message(source: str, folder: Path, origin: str, missing: list[str],
                           fixes: list[str]) -> str:
    state = "does not exist" if not folder.is_dir() else "lacks " + ", ".join(missing)
    expected = "\n".join(f"  {stem}.gz  (or uncompressed {stem})" for stem in IDX_FILES.values())
    return (f"{source}: no data in {folder} ({origin}): the folder {state}.\n"
            f"Expected these four MNIST-format files there:\n{expected}\n"
            f"Fix with one of:\n" + "\n".join(f"  - {fix}" for fix in fixes))


# --------------------------------------------------------------------------- the sources

def digits(*, seed: int = 0) -> Dataset:
    """scikit-learn's bundled 8x8 handwritten digits (1797 images), no download.

    Pixels are divided by 16 into [0, 1], shape (N, 1, 8, 8). The split is stratified with
    25% held out for testing (1347 train / 450 test), fixed by `seed`.
    """
    return _digits(int(seed))


@functools.lru_cache(maxsize=None)
def _digits(seed: int) -> Dataset:
    import torch
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    y = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=DIGITS_TEST_FRACTION, stratify=y, random_state=seed)
    return Dataset("digits", torch.from_numpy(x_train), torch.from_numpy(y_train),
                   torch.from_numpy(x_test), torch.from_numpy(y_test),
                   n_classes=10, class_names=tuple(str(i) for i in range(10)))


def fashion_mnist(data_root: str | os.PathLike | None = None) -> Dataset:
    """Fashion-MNIST (60000 train / 10000 test, 28x28 grey, 10 classes) from IDX files.

    The folder is `data_root` if given, else the environment variable LIFELONG_FASHION_MNIST,
    else /usr/share/datasets/fashion-mnist (where the Debian package `dataset-fashion-mnist`
    puts it). Shape (N, 1, 28, 28), pixels divided by 255. The split is the official one.
    """
    if data_root is not None:
        folder, origin = Path(data_root), "from data_root"
    elif os.environ.get(FASHION_MNIST_ENV):
        folder, origin = Path(os.environ[FASHION_MNIST_ENV]), f"from ${FASHION_MNIST_ENV}"
    else:
        folder, origin = Path(FASHION_MNIST_DEFAULT_ROOT), "the default folder"
    files, missing = find_idx_files(folder)
    if missing:
        raise DataError(_missing_files_message("fashion_mnist", folder, origin, missing, [
            "apt-get install -y dataset-fashion-mnist   "
            f"(installs them in {FASHION_MNIST_DEFAULT_ROOT})",
            "`data_root: /path/to/folder` in the stream spec",
            f"{FASHION_MNIST_ENV}=/path/to/folder in the environment",
        ]))
    return _fashion_mnist(_signature(files), tuple(files.items()))


@functools.lru_cache(maxsize=2)  # ~220 MB each
def _fashion_mnist(signature: tuple, files: tuple[tuple[str, Path], ...]) -> Dataset:
    tensors = _read_idx_folder(dict(files))
    for key in ("y_train", "y_test"):
        if int(tensors[key].max()) >= len(FASHION_MNIST_CLASSES):
            raise DataError(f"{dict(files)[key]}: label {int(tensors[key].max())} out of range "
                            f"for Fashion-MNIST's {len(FASHION_MNIST_CLASSES)} classes")
    return Dataset("fashion_mnist", **tensors, n_classes=len(FASHION_MNIST_CLASSES),
                   class_names=FASHION_MNIST_CLASSES)


def idx(data_root: str | os.PathLike | None) -> Dataset:
    """Any MNIST-format folder (MNIST, KMNIST, EMNIST, ...) with the four standard file names.

    n_classes is the largest label + 1, class names are "0".."n-1". uint8 pixels are divided by
    255 (float IDX inputs must already lie in [0, 1]). Images are used as stored: EMNIST's
    files hold them transposed, which a classifier does not mind.
    """
    if data_root is None:
        raise DataError("idx: needs a folder; set `data_root: /path/to/folder` in the stream "
                        "spec (the folder must hold " + ", ".join(IDX_FILES.values()) +
                        ", each gzipped or not)")
    folder = Path(data_root)
    files, missing = find_idx_files(folder)
    if missing:
        raise DataError(_missing_files_message("idx", folder, "from data_root", missing, [
            "put the four files (the standard MNIST names) in that folder",
            "point `data_root:` in the stream spec at the folder that holds them",
        ]))
    return _idx(_signature(files), tuple(files.items()))


@functools.lru_cache(maxsize=4)
def _idx(signature: tuple, files: tuple[tuple[str, Path], ...]) -> Dataset:
    tensors = _read_idx_folder(dict(files))
    n_classes = int(max(tensors["y_train"].max(), tensors["y_test"].max())) + 1
    return Dataset("idx", **tensors, n_classes=n_classes,
                   class_names=tuple(str(i) for i in range(n_classes)))


def mnist1d(*, seed: int = 0) -> Dataset:
    """MNIST-1D (Greydanus 2020): 4000 train / 1000 test 1-D signals of length 40, 10 classes.

    Generated in code by the `mnist1d` package's `make_dataset` with its default arguments but
    `seed` (the published pickle uses seed 42); nothing is downloaded or written to disk.
    Inputs are as the package gives them: standardised over the whole set (mean 0, std 1),
    shape (N, 40), so not in [0, 1]. The global `random`/NumPy RNG state, which the package
    reseeds, is restored afterwards.
    """
    return _mnist1d(int(seed))


@functools.lru_cache(maxsize=None)
def _mnist1d(seed: int) -> Dataset:
    import torch
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = MNIST1D_TRAIN + MNIST1D_TEST
    args.train_split = MNIST1D_TRAIN / args.num_samples
    args.final_seq_length = MNIST1D_LENGTH
    args.seed = seed
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        data = make_dataset(args)
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
    x_train, x_test = (torch.from_numpy(data[k].astype(np.float32)) for k in ("x", "x_test"))
    y_train, y_test = (torch.from_numpy(data[k].astype(np.int64)) for k in ("y", "y_test"))
    return Dataset("mnist1d", x_train, y_train, x_test, y_test,
                   n_classes=10, class_names=tuple(str(i) for i in range(10)))


# --------------------------------------------------------------------------- by name

def _no_root(source: Callable[..., Dataset], name: str) -> Callable[..., Dataset]:
    def load(data_root: str | None, seed: int) -> Dataset:
        if data_root is not None:
            raise DataError(f"{name}: takes no data_root (it needs no files); remove "
                            f"`data_root: {data_root}` from the stream spec")
        return source(seed=seed)
    return load


_LOADERS: dict[str, Callable[[str | None, int], Dataset]] = {
    "digits": _no_root(digits, "digits"),
    "fashion_mnist": lambda data_root, seed: fashion_mnist(data_root),
    "idx": lambda data_root, seed: idx(data_root),
    "mnist1d": _no_root(mnist1d, "mnist1d"),
}
DATASETS: tuple[str, ...] = tuple(_LOADERS)


def load_dataset(name: str, *, data_root: str | None = None, seed: int = 0) -> Dataset:
    """The dataset called `name` (one of `DATASETS`); `seed` fixes generated data and splits.

    `data_root` is the folder for `fashion_mnist` (optional) and `idx` (required). The
    result is cached and shared: do not mutate its tensors in place.
    """
    key = name.strip().lower().replace("-", "_")
    if key not in _LOADERS:
        close = difflib.get_close_matches(key, DATASETS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise DataError(f"unknown dataset {name!r}.{hint} Valid names: {', '.join(DATASETS)}")
    return _LOADERS[key](data_root, seed)


def clear_cache() -> None:
    """Forget every dataset loaded so far (frees the memory; the next load reads again)."""
    for cached in (_digits, _fashion_mnist, _idx, _mnist1d):
        cached.cache_clear()
