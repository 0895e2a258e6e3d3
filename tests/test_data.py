"""Loading, splits, verification, error messages and bring-your-own data (autoenc.data)."""
from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from autoenc import data
from autoenc.errors import DataError
from generated import idx_bytes, make_images, write_dataset, write_idx, write_npz


def file_counts(data_dir: Path, name: str) -> tuple[int, int]:
    """Images in the dataset's training file and test file."""
    folder = data_dir / name
    return (len(data.read_idx(data._find(folder, data.TRAIN_LABELS))),
            len(data.read_idx(data._find(folder, data.TEST_LABELS))))


@pytest.fixture
def small_mnist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data dir with a small generated mnist (120 train / 24 test) whose checksums verify."""
    monkeypatch.setitem(data.SHA256, "mnist", write_dataset(tmp_path, "mnist", 120, 24))
    return tmp_path


# ----------------------------------------------------------------------------- known datasets

@pytest.mark.parametrize("name", data.KNOWN_DATASETS)
def test_load_splits(data_dir: Path, name: str) -> None:
    n_file, n_test = file_counts(data_dir, name)
    n_val = n_file // 12
    expected = {"train": n_file - n_val, "val": n_val, "test": n_test}
    loaded = {split: data.load(name, split, data_dir=data_dir) for split in data.SPLITS}
    for split, (x, y) in loaded.items():
        assert x.shape == (expected[split], 28 * 28)
        assert x.dtype == torch.float32 and x.is_contiguous()
        assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
        assert y.dtype == torch.int64 and y.shape == (expected[split],)
        assert 0 <= int(y.min()) and int(y.max()) <= 9
    # "val" is the tail of the training file, in file order.
    labels = data.read_idx(data._find(data_dir / name, data.TRAIN_LABELS))
    joined = torch.cat([loaded["train"][1], loaded["val"][1]]).numpy()
    np.testing.assert_array_equal(joined, labels)
    assert data.image_shape(name) == (28, 28)


def test_real_data_counts(data_dir: Path, real_data: bool) -> None:
    if not real_data:
        pytest.skip("needs the real datasets (AUTOENC_DATA_DIR)")
    for name in data.KNOWN_DATASETS:
        sizes = {split: len(data.load(name, split, data_dir=data_dir)[1])
                 for split in data.SPLITS}
        assert sizes == {"train": 55_000, "val": 5_000, "test": 10_000}
    labels = torch.cat([data.load("fashion-mnist", s, data_dir=data_dir)[1]
                        for s in ("train", "val")])
    assert torch.bincount(labels).tolist() == [6000] * 10


def test_check_report(data_dir: Path, real_data: bool) -> None:
    report, ok = data.check(data_dir)
    assert ok, report
    assert report.count("✓") == 8 and "✗" not in report
    assert "mnist: found in explicit dir" in report and "fashion-mnist: found" in report
    assert "Ankle boot" in report
    if real_data:
        assert "train 55,000, val 5,000, test 10,000" in report
        assert "6,000" in report


def _autoenc(capsys, monkeypatch, *args: str, env: dict | None = None):
    """`autoenc ARGS` in this process: (exit status, stdout, stderr)."""
    from autoenc.cli import main

    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_data_check(data_dir: Path, capsys, monkeypatch) -> None:
    code, out, _ = _autoenc(capsys, monkeypatch, "data", "check", "--data-dir", str(data_dir))
    assert code == 0, out
    assert "all datasets found and verified" in out


def test_cli_names_the_data_folders_source_truthfully(data_dir: Path, tmp_path: Path, capsys, monkeypatch) -> None:
    """A folder from the AUTOENC_DATA_DIR variable is labelled as such, not as --data-dir: in `autoenc data
    check` and in a command's missing-data error; a --data-dir given on the command line wins and says so."""
    code, out, _ = _autoenc(capsys, monkeypatch, "data", "check", env={"AUTOENC_DATA_DIR": str(data_dir)})
    assert code == 0, out
    assert f"mnist: found in explicit dir (AUTOENC_DATA_DIR): {data_dir / 'mnist'}" in out
    assert "(--data-dir" not in out
    code, out, _ = _autoenc(capsys, monkeypatch, "data", "check", "--data-dir", str(data_dir),
                            env={"AUTOENC_DATA_DIR": str(tmp_path / "elsewhere")})
    assert code == 0, out
    assert f"mnist: found in explicit dir (--data-dir / data_dir=): {data_dir / 'mnist'}" in out
    assert "AUTOENC_DATA_DIR)" not in out
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(tmp_path)
    code, _, err = _autoenc(capsys, monkeypatch, "train", "trainer.epochs=1", env={"AUTOENC_DATA_DIR": str(empty)})
    assert code == 2
    assert err.startswith("error: dataset 'mnist' not found")
    assert f"{empty / 'mnist'} (AUTOENC_DATA_DIR): no such folder" in err
    assert "(--data-dir" not in err


def test_decoded_files_are_cached(small_mnist: Path) -> None:
    data.clear_cache()
    data.load("mnist", "train", data_dir=small_mnist)
    reads = data._decode_file.cache_info().misses
    assert reads == 4
    data.load("mnist", "val", data_dir=small_mnist)
    data.load("mnist", "test", data_dir=small_mnist)
    assert data._decode_file.cache_info().misses == reads


def test_uncompressed_files_verify(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table = write_dataset(tmp_path, "mnist", 120, 24, gz=False)
    monkeypatch.setitem(data.SHA256, "mnist", table)
    x, y = data.load("mnist", "test", data_dir=tmp_path)
    assert x.shape == (24, 784) and y.shape == (24,)


def test_class_names() -> None:
    assert data.class_names("mnist") == [str(d) for d in range(10)]
    names = data.class_names("fashion-mnist")
    assert len(names) == 10 and names[0] == "T-shirt/top" and names[-1] == "Ankle boot"
    assert data.class_names("some/file.npz") is None
    assert data.num_classes("mnist") == 10


# ----------------------------------------------------------------------------- where files come from

def test_sources_in_order(small_mnist: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Only in the cache: found there.
    cache = data.cache_dir()
    cache.mkdir(parents=True)
    (small_mnist / "mnist").rename(cache / "mnist")
    assert data.locate("mnist") == ("cache", cache / "mnist")
    # An explicit dir (argument or AUTOENC_DATA_DIR) comes first.
    write_dataset(small_mnist / "explicit", "mnist", 120, 24)
    assert data.locate("mnist", small_mnist / "explicit")[0] == "explicit dir"
    monkeypatch.setenv("AUTOENC_DATA_DIR", str(small_mnist / "explicit"))
    assert data.locate("mnist") == ("explicit dir", small_mnist / "explicit" / "mnist")
    assert data.load("mnist", "val")[0].shape == (10, 784)


def test_debian_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table = write_dataset(tmp_path, "fashion-mnist", 120, 24)
    monkeypatch.setitem(data.SHA256, "fashion-mnist", table)
    monkeypatch.setitem(data.SYSTEM_DIRS, "fashion-mnist", [tmp_path / "fashion-mnist"])
    assert data.locate("fashion-mnist") == ("Debian", tmp_path / "fashion-mnist")
    x, y = data.load("fashion-mnist", "train", download=False)
    assert x.shape == (110, 784) and y.shape == (110,)
    report, _ = data.check()
    assert f"fashion-mnist: found in Debian (package dataset-fashion-mnist): {tmp_path}" in report


def test_missing_dataset_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    system = tmp_path / "usr-share"
    monkeypatch.setitem(data.SYSTEM_DIRS, "fashion-mnist", [system])
    (tmp_path / "explicit" / "fashion-mnist").mkdir(parents=True)
    write_idx(tmp_path / "explicit" / "fashion-mnist" / (data.TRAIN_IMAGES + ".gz"),
              np.zeros((12, 28, 28), np.uint8))
    with pytest.raises(DataError) as info:
        data.load("fashion-mnist", "train", data_dir=tmp_path / "explicit")
    message = str(info.value)
    for looked in (tmp_path / "explicit" / "fashion-mnist", data.cache_dir() / "fashion-mnist",
                   system):
        assert str(looked) in message
    assert "missing train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz]" in message
    assert "no such folder" in message and "AUTOENC_OFFLINE" in message
    assert "--data-dir" in message and "AUTOENC_DATA_DIR" in message          # fix 1
    assert "autoenc data fetch fashion-mnist" in message                       # fix 2
    assert "apt install dataset-fashion-mnist" in message                    # fix 3
    with pytest.raises(DataError, match="download=False"):
        data.load("fashion-mnist", "train", data_dir=tmp_path / "nowhere", download=False)
    report, ok = data.check(tmp_path / "nowhere")
    assert not ok and "mnist: ✗ not found" in report and "fashion-mnist: ✗ not found" in report


def test_explicit_dir_pointing_at_the_files(small_mnist: Path) -> None:
    with pytest.raises(DataError, match="pass the folder above it"):
        data.load("mnist", "train", data_dir=small_mnist / "mnist")


def test_unknown_dataset_and_split(small_mnist: Path) -> None:
    with pytest.raises(DataError) as info:
        data.load("cifar10", "train")
    message = str(info.value)
    assert "'cifar10'" in message and "mnist, fashion-mnist" in message and ".npz" in message
    with pytest.raises(DataError, match="no such file or folder"):
        data.load("no/such/file.npz", "train")
    with pytest.raises(DataError, match="train, val, test"):
        data.load("mnist", "validation", data_dir=small_mnist)
    with pytest.raises(DataError, match="known datasets are mnist, fashion-mnist"):
        data.fetch("cifar10")


# ----------------------------------------------------------------------------- corrupt files

def test_checksum_mismatch(small_mnist: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    actual = data.SHA256["mnist"][data.TEST_LABELS]
    monkeypatch.setitem(data.SHA256["mnist"], data.TEST_LABELS, "0" * 64)
    with pytest.raises(DataError) as info:
        data.load("mnist", "test", data_dir=small_mnist)
    message = str(info.value)
    assert "t10k-labels-idx1-ubyte.gz does not verify" in message
    assert "0" * 64 in message and actual in message and "delete it" in message
    report, ok = data.check(small_mnist)
    assert not ok and "✗ t10k-labels-idx1-ubyte.gz" in report


def test_changed_file_is_verified_again(small_mnist: Path) -> None:
    data.load("mnist", "test", data_dir=small_mnist)
    path = small_mnist / "mnist" / (data.TEST_LABELS + ".gz")
    labels = data.read_idx(path)
    write_idx(path, (labels + 1) % 10)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with pytest.raises(DataError, match="does not verify"):
        data.load("mnist", "test", data_dir=small_mnist)


def test_truncated_gzip(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.ones((10, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:-30])
    with pytest.raises(DataError) as info:
        data.read_idx(path)
    assert str(path) in str(info.value)
    assert "is a truncated or corrupt gzip file; delete it and fetch again" in str(info.value)


def test_wrong_magic(tmp_path: Path) -> None:
    path = tmp_path / "images.idx"
    path.write_bytes(b"\x01\x02\x08\x03" + idx_bytes(np.zeros((2, 3, 3), np.uint8))[4:])
    with pytest.raises(DataError, match="is not an IDX file: it starts with 01 02 08 03"):
        data.read_idx(path)
    with pytest.raises(DataError, match="HTML page"):
        data.read_idx(b"<!DOCTYPE html><html>Not found</html>")


def test_header_disagrees_with_length() -> None:
    good = idx_bytes(np.zeros((3, 4, 4), np.uint8))
    with pytest.raises(DataError, match=r"truncated: its header announces shape \(3, 4, 4\)"):
        data.read_idx(good[:-5])
    with pytest.raises(DataError, match="5 trailing bytes"):
        data.read_idx(good + b"12345")
    with pytest.raises(DataError, match="impossible shape"):
        data.read_idx(bytes([0, 0, 8, 4, 0, 0, 0, 0]) + b"\xff" * 12)


def test_read_idx_types() -> None:
    for array in (np.arange(-3, 3, dtype=np.int8), np.arange(6, dtype=">i4").reshape(2, 3),
                  np.linspace(0, 1, 4, dtype=">f8")):
        out = data.read_idx(gzip.compress(idx_bytes(array)))
        np.testing.assert_array_equal(out, array)
    two_members = gzip.compress(b"\0\0\x08\x01\0\0\0\x02") + gzip.compress(b"\x07\x09")
    assert data.read_idx(two_members).tolist() == [7, 9]


def test_label_count_mismatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_dataset(tmp_path, "mnist", 120, 24)
    labels = tmp_path / "mnist" / (data.TRAIN_LABELS + ".gz")
    write_idx(labels, data.read_idx(labels)[:-1])
    monkeypatch.setitem(data.SHA256, "mnist", {})  # no checksums: reach the count check
    with pytest.raises(DataError) as info:
        data.load("mnist", "train", data_dir=tmp_path)
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz has 120 images but" in message
    assert "train-labels-idx1-ubyte.gz has 119 labels" in message
    with pytest.raises(DataError, match="has 120 images but .* has 119 labels"):
        data.load(str(tmp_path / "mnist"), "train")  # the same folder as your own data


# ----------------------------------------------------------------------------- your own data

def test_npz_pool(tmp_path: Path) -> None:
    path = str(write_npz(tmp_path / "mine.npz", n=700, size=20))
    assert data.image_shape(path) == (20, 20)
    sizes = {split: data.load(path, split)[0].shape for split in data.SPLITS}
    # 700 images: test = round(700/7) = 100, val = 600 // 12 = 50, train = 550.
    assert sizes == {"train": (550, 400), "val": (50, 400), "test": (100, 400)}
    x, y = data.load(path, "test")
    expected = np.load(path)["x"][600:].reshape(100, -1) / 255
    np.testing.assert_allclose(x.numpy(), expected, atol=1e-6)
    assert y.tolist() == np.load(path)["y"][600:].tolist()
    assert data.num_classes(path) == 10
    unlabelled = str(write_npz(tmp_path / "nolabels.npz", n=70, labels=False))
    assert data.load(unlabelled, "train")[1] is None
    assert data.num_classes(unlabelled) is None


def test_your_own_data_may_be_named_by_a_pathlib_path(tmp_path: Path, small_mnist: Path) -> None:
    # load(Path(...)) was an AttributeError ('PosixPath' object has no attribute 'strip')
    path = write_npz(tmp_path / "mine.npz", n=700, size=20)
    for split in data.SPLITS:
        assert torch.equal(data.load(path, split)[0], data.load(str(path), split)[0])
    assert data.image_shape(path) == (20, 20) and data.num_classes(path) == 10
    assert data.fingerprint(path) == data.fingerprint(str(path))
    data.ensure(path)
    assert data.class_names(path) is None
    assert data.load(small_mnist / "mnist", "val")[0].shape[1] == 784  # a folder of IDX files
    with pytest.raises(DataError, match=r"no such file or folder"):
        data.load(tmp_path / "missing.npz", "train")
    with pytest.raises(DataError, match="dataset None is a NoneType; give a name"):
        data.load(None, "train")


def test_npz_train_test_keys(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    y = np.arange(48) % 10
    np.savez(tmp_path / "tt.npz", x_train=make_images(y[:36], rng, size=16), y_train=y[:36],
             x_test=make_images(y[36:], rng, size=16))
    x, labels = data.load(str(tmp_path / "tt.npz"), "val")
    assert x.shape == (3, 256) and labels.tolist() == y[33:36].tolist()
    assert data.load(str(tmp_path / "tt.npz"), "test")[1] is None


@pytest.mark.parametrize("arrays, expected", [
    ({"x": np.zeros((70, 8, 8), np.float32)}, r"array 'x'.*uint8.*\(N, H, W\), found float32"),
    ({"x": np.zeros((70, 64), np.uint8)}, r"array 'x'.*found uint8 of shape \(70, 64\)"),
    ({"images": np.zeros((70, 8, 8), np.uint8)}, r"has no array 'x' \(it holds \['images'\]\)"),
    ({"x": np.zeros((70, 8, 8), np.uint8), "y": np.zeros(69, np.int64)},
     r"array 'x' has 70 images but .*array 'y' has 69 labels"),
    ({"x": np.zeros((70, 8, 8), np.uint8), "y": np.zeros(70, np.float32)},
     r"array 'y': expected labels as an integer array"),
])
def test_bad_npz(tmp_path: Path, arrays: dict, expected: str) -> None:
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=expected):
        data.load(str(tmp_path / "bad.npz"), "train")


def test_not_an_npz(tmp_path: Path) -> None:
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 this is not a zip archive")
    with pytest.raises(DataError, match="cannot read .*broken.npz as an .npz archive"):
        data.load(str(tmp_path / "broken.npz"), "train")


@pytest.mark.parametrize("content, what", [
    (b"x,y\n1,2\n", "it looks like a text file"),
    (b"", "it is empty"),
    (b"\x00\x01\x02\x03\xff\xfe\xfd\xfc", "it starts with 00 01 02 03 ff fe fd fc"),
])
def test_a_file_named_npz_that_is_not_one(tmp_path: Path, content: bytes, what: str) -> None:
    """A text (or other non-zip) file named .npz: autoenc's own message naming the file and what an .npz
    for autoenc holds, not numpy's advice to load it unsafely with allow_pickle=."""
    path = tmp_path / "notes.npz"
    path.write_bytes(content)
    with pytest.raises(DataError) as info:
        data.load(str(path), "train")
    message = str(info.value)
    assert message.startswith(f"{path} is not an .npz archive (a zip file, which starts with 'PK'): {what}; ")
    assert message.endswith("an .npz dataset for autoenc holds x, a uint8 array of shape (N, H, W), and optionally y, "
                            "integer labels of shape (N,); or x_train and x_test (and y_train, y_test). "
                            "numpy.savez(PATH, x=x, y=y) writes one")
    assert "allow_pickle" not in message and "pickle" not in message


def test_an_npz_of_pickled_objects_or_one_npy_array_is_refused_by_name(tmp_path: Path) -> None:
    np.savez(tmp_path / "objects.npz", x=np.array([{"image": 1}], dtype=object))
    with pytest.raises(DataError) as info:
        data.load(str(tmp_path / "objects.npz"), "train")
    assert str(info.value).startswith(f"{tmp_path / 'objects.npz'}, array 'x' holds Python objects (pickled), "
                                      "which autoenc does not load: an .npz dataset for autoenc holds x, a uint8 array")
    assert "allow_pickle" not in str(info.value)
    np.save(tmp_path / "one.npy", np.zeros((20, 4, 4), np.uint8))
    (tmp_path / "one.npy").rename(tmp_path / "one.npz")
    with pytest.raises(DataError, match=r"one\.npz is a single \.npy array, not an \.npz archive: an \.npz dataset"):
        data.load(str(tmp_path / "one.npz"), "train")


def test_a_dataset_too_small_for_every_split_is_refused_at_load(tmp_path: Path) -> None:
    """5 images would split train 4, val 0, test 1: refused when loaded (any split, and by ensure,
    which a study runs first), saying how many images the splits need; 14 is the fewest that give
    every split an image."""
    small = write_npz(tmp_path / "five.npz", n=5, size=8)
    for call in (lambda: data.load(str(small), "train"), lambda: data.load(str(small), "test"),
                 lambda: data.ensure(str(small))):
        with pytest.raises(DataError) as info:
            call()
        assert str(info.value) == (
            f"{small}, array 'x' holds 5 images, too few to split: autoenc splits one pool in file order into test "
            "(the last round(N / 7)), val (the last rest // 12 of the others) and train, which would give train 4, "
            "val 0, test 1. Every split needs an image: give at least 14 images (train 11, val 1, test 2); the "
            "protocol's 70,000 split 55,000 / 5,000 / 10,000")
    with pytest.raises(DataError, match=r"holds 13 images, too few to split: .* train 11, val 0, test 2\."):
        data.load(str(write_npz(tmp_path / "thirteen.npz", n=13, size=8)), "val")
    fourteen = str(write_npz(tmp_path / "fourteen.npz", n=14, size=8))
    assert [len(data.load(fourteen, s)[0]) for s in data.SPLITS] == [11, 1, 2]
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "tt.npz", x_train=make_images(np.arange(11) % 10, rng, size=8),
             x_test=make_images(np.arange(3) % 10, rng, size=8))
    with pytest.raises(DataError, match=r"array 'x_train' holds 11 training images, too few to split: validation "
                                        r"is the last n // 12 of them, so it would get none \(train 11, val 0\)\. "
                                        r"The training file needs at least 12 images"):
        data.load(str(tmp_path / "tt.npz"), "train")
    images = write_idx(tmp_path / "few-images-idx3-ubyte.gz", make_images(np.arange(6) % 10, rng, size=8))
    with pytest.raises(DataError, match=r"few-images-idx3-ubyte\.gz holds 6 images, too few to split"):
        data.load(str(images), "train")


def test_folder_with_standard_names(tmp_path: Path) -> None:
    write_dataset(tmp_path, "mine", 120, 24)
    folder = str(tmp_path / "mine")
    x, y = data.load(folder, "val")
    assert x.shape == (10, 784) and y.shape == (10,)
    for stem in (data.TRAIN_LABELS, data.TEST_LABELS):
        (tmp_path / "mine" / (stem + ".gz")).unlink()
    x, y = data.load(folder, "train")
    assert x.shape == (110, 784) and y is None
    (tmp_path / "mine" / (data.TEST_IMAGES + ".gz")).unlink()
    with pytest.raises(DataError, match="has no t10k-images-idx3-ubyte"):
        data.load(folder, "train")


def test_idx_images_file(tmp_path: Path) -> None:
    y = np.arange(140, dtype=np.uint8) % 10
    images = write_idx(tmp_path / "letters-images-idx3-ubyte.gz",
                       make_images(y, np.random.default_rng(0), size=24))
    x, labels = data.load(str(images), "test")  # 140 images: test 20, val 10, train 110
    assert x.shape == (20, 576) and labels is None
    assert data.image_shape(str(images)) == (24, 24)
    write_idx(tmp_path / "letters-labels-idx1-ubyte.gz", y)
    data.clear_cache()
    x, labels = data.load(str(images), "val")
    assert x.shape == (10, 576) and labels.tolist() == y[110:120].tolist()
    labels_only = write_idx(tmp_path / "only-labels.gz", y)
    with pytest.raises(DataError, match=r"expected images as a uint8 array of shape \(N, H, W\)"):
        data.load(str(labels_only), "train")
