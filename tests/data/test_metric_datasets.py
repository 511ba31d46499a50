"""Metric-learning data set loaders on generated trees of the real layouts."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_trees import write_cars, write_cub, write_inshop, write_sop

from bdb_ext.data import CUB200, Cars196, InShop, StanfordOnlineProducts, build_dataset


def relabelled(classes: list[int]) -> list[int]:
    mapping = {c: i for i, c in enumerate(sorted(set(classes)))}
    return [mapping[c] for c in classes]


@pytest.mark.parametrize(("cls", "writer", "name"), [(CUB200, write_cub, "cub"), (Cars196, write_cars, "cars"),
                                                     (StanfordOnlineProducts, write_sop, "sop")])
def test_standard_class_splits(tmp_path: Path, cls, writer, name: str) -> None:
    expected = writer(tmp_path)
    data = build_dataset(name, tmp_path)
    assert isinstance(data, cls)
    assert [r.pid for r in data.train] == relabelled(expected["train"])
    assert [r.pid for r in data.test] == expected["test"]  # test classes keep their ids
    assert data.num_train_classes == data.num_train_pids == len(set(expected["train"]))
    assert all(r.camid == -1 and Path(r.path).is_file() for r in data.train + data.test)
    assert f"test   | {len(set(expected['test'])):>9} | {len(expected['test']):>8}" in data.summary()


def test_inshop_partition(tmp_path: Path) -> None:
    expected = write_inshop(tmp_path)
    data = InShop(tmp_path)
    assert [r.pid for r in data.train] == relabelled(expected["train"])
    assert [r.pid for r in data.query] == expected["query"]
    assert [r.pid for r in data.gallery] == expected["gallery"]
    assert data.test == data.query + data.gallery
    assert all(Path(r.path).is_file() for r in data.test)
    assert "gallery" in data.summary()


def test_missing_files_are_named(tmp_path: Path) -> None:
    write_cub(tmp_path)
    (tmp_path / "CUB_200_2011" / "image_class_labels.txt").unlink()
    with pytest.raises(FileNotFoundError, match="'image_class_labels.txt'"):
        CUB200(tmp_path)
    with pytest.raises(FileNotFoundError, match="'cars_annos.mat'"):
        Cars196(tmp_path)
    with pytest.raises(FileNotFoundError, match="Eval/list_eval_partition.txt"):
        InShop(tmp_path)


def test_malformed_lists(tmp_path: Path) -> None:
    write_sop(tmp_path)
    sop_list = tmp_path / "Stanford_Online_Products" / "Ebay_test.txt"
    sop_list.write_text(sop_list.read_text() + "7 11320 1\n")
    with pytest.raises(ValueError, match="malformed line 5 .*Ebay_test.txt"):
        StanfordOnlineProducts(tmp_path)
    sop_list.write_text("image_id class_id super_class_id path\n7 mug 1 mug_final/x.JPG\n")
    with pytest.raises(ValueError, match="non-integer class_id 'mug'"):
        StanfordOnlineProducts(tmp_path)

    write_inshop(tmp_path)
    partition = tmp_path / "InShop" / "Eval" / "list_eval_partition.txt"
    lines = partition.read_text().splitlines(keepends=True)
    partition.write_text("".join(lines[:-1]))
    with pytest.raises(ValueError, match="announces 6 images but lists 5"):
        InShop(tmp_path)
    partition.write_text("".join(lines[:-1]) + "img/x.jpg id_00000012 validation\n")
    with pytest.raises(ValueError, match="train\\|query\\|gallery"):
        InShop(tmp_path)
