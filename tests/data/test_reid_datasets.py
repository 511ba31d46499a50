"""Re-ID data set loaders on generated trees of the real layouts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fake_trees import write_cuhk03_config, write_cuhk03_mat, write_cuhk03_np, write_image, write_market, write_msmt17
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from bdb_ext.data import (
    CUHK03,
    MSMT17,
    DukeMTMCreID,
    ImageRecord,
    Market1501,
    MarketLayoutFolder,
    build_dataset,
    parse_market_name,
)


def pid_cam(records: list[ImageRecord]) -> list[tuple[int, int]]:
    return [(r.pid, r.camid) for r in records]


def relabelled(pairs: list[tuple[int, int]]) -> list[tuple[int, int]]:
    mapping = {pid: i for i, pid in enumerate(sorted({p for p, _ in pairs}))}
    return [(mapping[p], c) for p, c in pairs]


@pytest.mark.parametrize("nesting", ["", "Market-1501-v15.09.15", "market1501/Market-1501-v15.09.15"])
def test_market1501_reads_layout_drops_junk_keeps_distractors(tmp_path: Path, nesting: str) -> None:
    expected = write_market(tmp_path / nesting)
    data = Market1501(tmp_path)
    # Sorted file names order the records; compare as multisets of (pid, camid).
    assert sorted(pid_cam(data.train)) == sorted(relabelled(expected["train"]))
    assert sorted(pid_cam(data.query)) == sorted(expected["query"])
    assert sorted(pid_cam(data.gallery)) == sorted(expected["gallery"])
    assert all(r.pid != -1 for r in data.gallery) and sum(r.pid == 0 for r in data.gallery) == 2
    assert data.num_train_pids == 3 and {r.pid for r in data.train} == {0, 1, 2}
    assert data.num_train_cams == 4  # cameras 1, 2, 3 and 6
    assert all(Path(r.path).is_file() and Path(r.path).suffix == ".jpg" for r in data.gallery)
    summary = data.summary()
    assert "market1501" in summary
    rows = {line.split("|")[0].strip(): [int(x) for x in line.split("|")[1:]]
            for line in summary.splitlines() if "|" in line and "subset" not in line}
    # ids, images, cameras; the distractor id 0 counts as an id, as in torchreid's summary
    assert rows == {"train": [3, 6, 4], "query": [2, 2, 2], "gallery": [4, 7, 5]}


def test_duke_names_and_eight_cameras(tmp_path: Path) -> None:
    expected = write_market(tmp_path / "DukeMTMC-reID", cameras=8, duke_names=True)
    data = DukeMTMCreID(tmp_path)
    assert sorted(pid_cam(data.train)) == sorted(relabelled(expected["train"]))
    assert max(r.camid for r in data.train) == 7


def test_market_layout_folder_accepts_any_camera_count(tmp_path: Path) -> None:
    write_market(tmp_path, cameras=9)
    data = MarketLayoutFolder(tmp_path)
    assert max(r.camid for r in data.train) == 8
    with pytest.raises(ValueError, match=r"camera must be 1\.\.6, got 9"):
        Market1501(tmp_path)


def test_missing_folder_is_named(tmp_path: Path) -> None:
    write_market(tmp_path)
    (tmp_path / "query").rename(tmp_path / "queries")
    with pytest.raises(FileNotFoundError, match="missing under .*'query'"):
        Market1501(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Market1501(tmp_path / "nowhere")
    with pytest.raises(TypeError, match="root must be a str or os.PathLike"):
        Market1501(3)


@pytest.mark.parametrize("bad_name", ["frame_0001.jpg", "0002c1s1_000451_03.jpg", "-7_c1s1_000451_03.jpg",
                                      "0002_c0s1_000451_03.jpg"])
def test_malformed_names_raise(tmp_path: Path, bad_name: str) -> None:
    write_market(tmp_path)
    write_image(tmp_path / "bounding_box_test" / bad_name)
    with pytest.raises(ValueError, match=bad_name.replace(".", r"\.")):
        Market1501(tmp_path)


# After the camera number comes a non-digit in every real layout: 's<sequence>' (Market), '_f<frame>' (Duke),
# '_<index>' (CUHK03-NP).
@given(pid=st.integers(-1, 99999), cam=st.integers(1, 99), rest=st.from_regex(r"[s_][s0-9_]{0,11}", fullmatch=True))
def test_parse_market_name_round_trip(pid: int, cam: int, rest: str) -> None:
    name = f"{pid:04d}_c{cam}{rest}.jpg" if pid >= 0 else f"-1_c{cam}{rest}.jpg"
    assert parse_market_name(name, num_cameras=99) == (pid, cam - 1)


@pytest.mark.parametrize("name", ["0002_c12s1_000451_03.jpg", "0002_c12_f0046182.jpg", "0002_c12_3.png"])
def test_multi_digit_cameras(name: str) -> None:
    # A one-digit pattern read c12 as camera 1, so in folders of 10+ cameras the same-camera filter was wrong.
    assert parse_market_name(name) == (2, 11)
    assert parse_market_name(name, num_cameras=12) == (2, 11)
    with pytest.raises(ValueError, match="camera must be 1..6, got 12"):
        parse_market_name(name, num_cameras=6)


@pytest.mark.parametrize("duke_names", [False, True])
def test_folder_with_twelve_cameras(tmp_path: Path, duke_names: bool) -> None:
    expected = write_market(tmp_path, cameras=12, duke_names=duke_names)
    data = MarketLayoutFolder(tmp_path)
    assert sorted(pid_cam(data.train)) == sorted(relabelled(expected["train"]))
    assert 11 in {camid for _, camid in pid_cam(data.train)}  # pid 9 seen by camera 12
    # The fixed-camera data sets refuse the name instead of reading camera 1.
    with pytest.raises(ValueError, match="camera must be 1..(6|8), got 12"):
        (DukeMTMCreID if duke_names else Market1501)(tmp_path)


def test_cuhk03_np_refuses_a_third_camera(tmp_path: Path) -> None:
    write_cuhk03_np(tmp_path, "detected")
    write_image(tmp_path / "cuhk03-np" / "detected" / "query" / "0010_c12_9.png")
    with pytest.raises(ValueError, match="camera must be 1..2, got 12"):
        CUHK03(tmp_path, split="detected")


@pytest.mark.parametrize("split", ["detected", "labeled"])
def test_cuhk03_np_folders(tmp_path: Path, split: str) -> None:
    expected = write_cuhk03_np(tmp_path, split)
    data = CUHK03(tmp_path, split=split)
    assert data.name == f"cuhk03-{split}"
    assert sorted(pid_cam(data.train)) == sorted(relabelled(expected["train"]))
    assert sorted(pid_cam(data.query)) == sorted(expected["query"])
    assert sorted(pid_cam(data.gallery)) == sorted(expected["gallery"])


def test_cuhk03_mat_files_extract_images_and_follow_config(tmp_path: Path) -> None:
    names = write_cuhk03_mat(tmp_path)
    assert len(names) == 5 * 2 * 10 - 1  # one empty cell
    expected = write_cuhk03_config(tmp_path, "detected", names)
    data = CUHK03(tmp_path, split="detected")
    image_dir = tmp_path / "images_detected"
    assert sorted(p.name for p in image_dir.iterdir()) == sorted(names)
    assert "1_002_2_10.png" not in names and "1_002_2_09.png" in names  # the empty cell is skipped
    for records, want in ((data.query, expected["query"]), (data.gallery, expected["gallery"])):
        assert [(Path(r.path).name, r.pid, r.camid) for r in records] == want
    assert data.num_train_pids == 6 and data.num_train_cams == 2
    # Pixels went through the MATLAB transpose correctly: H x W x C = 6 x 3 x 3, value 10 * pair + person.
    image = Image.open(image_dir / "2_002_2_07.png")
    assert image.size == (3, 6) and image.getpixel((0, 0)) == (11, 11, 11)
    # A second construction reuses the extracted images.
    stamp = os.stat(image_dir / "2_002_2_07.png").st_mtime_ns
    CUHK03(tmp_path, split="detected")
    assert os.stat(image_dir / "2_002_2_07.png").st_mtime_ns == stamp


def test_cuhk03_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="split must be 'detected' or 'labeled'"):
        CUHK03(tmp_path, split="manual")
    write_cuhk03_mat(tmp_path)
    with pytest.raises(FileNotFoundError, match="cuhk03_new_protocol_config_labeled.mat"):
        CUHK03(tmp_path, split="labeled")
    write_cuhk03_config(tmp_path, "labeled", ["9_001_1_01.png"])
    with pytest.raises(ValueError, match="does not contain"):
        CUHK03(tmp_path, split="labeled", extract_dir=tmp_path / "out")


@pytest.mark.parametrize("version", ["MSMT17_V1", "MSMT17_V2"])
def test_msmt17_lists(tmp_path: Path, version: str) -> None:
    expected = write_msmt17(tmp_path, version)
    data = MSMT17(tmp_path)
    assert pid_cam(data.train) == relabelled(expected["list_train.txt"])
    assert pid_cam(data.query) == expected["list_query.txt"]
    assert pid_cam(data.gallery) == expected["list_gallery.txt"]
    assert all(Path(r.path).is_file() for r in data.train + data.query + data.gallery)
    with_val = MSMT17(tmp_path / "msmt17" / version, include_val=True)
    assert with_val.num_train_pids == 3


def test_msmt17_malformed_list(tmp_path: Path) -> None:
    write_msmt17(tmp_path)
    base = tmp_path / "msmt17" / "MSMT17_V1"
    (base / "list_query.txt").write_text("0000/0000_000_04_0303morning_0000_0.jpg 0\nbroken_line\n")
    with pytest.raises(ValueError, match="line 2"):
        MSMT17(tmp_path)
    (base / "list_query.txt").write_text("0000/0000_000_99_0303morning_0000_0.jpg 0\n")
    with pytest.raises(ValueError, match="camera 01-15"):
        MSMT17(tmp_path)
    (base / "list_gallery.txt").unlink()
    with pytest.raises(FileNotFoundError, match="list_gallery.txt"):
        MSMT17(tmp_path)


def test_build_dataset(tmp_path: Path) -> None:
    write_market(tmp_path / "m")
    write_cuhk03_np(tmp_path / "c", "labeled")
    assert isinstance(build_dataset("Market1501", tmp_path / "m"), Market1501)
    assert build_dataset("cuhk03-labeled", tmp_path / "c").split == "labeled"
    with pytest.raises(ValueError, match="unknown data set name 'market'.*market1501"):
        build_dataset("market", tmp_path)
