"""Writers of small data set trees in the real on-disk layouts (tiny images, real naming rules), for the loader
tests. Each writer returns what a correct loader must find."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
from PIL import Image
from scipy.io import savemat

IMAGE_SIZE = (4, 8)  # (width, height): small, but a real decodable image


def write_image(path: Path, value: int = 0, mode: str = "RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    size = IMAGE_SIZE
    colour = (value % 256, (3 * value) % 256, (7 * value) % 256) if mode == "RGB" else value % 256
    Image.new(mode, size, colour).save(path)
    return path


def write_market(root: Path, *, cameras: int = 6, duke_names: bool = False) -> dict:
    """Market-1501 (or, with duke_names, DukeMTMC-reID) layout. Train: ids 2, 7, 9; query: ids 2, 5; gallery: ids 2, 5,
    8, distractors 0000 and junk -1 (dropped by loaders); plus a Thumbs.db as the real archive has."""

    def name(pid: int, cam: int, idx: int) -> str:
        pid_text = f"{pid:04d}" if pid >= 0 else "-1"
        if duke_names:
            return f"{pid_text}_c{cam}_f{idx:07d}.jpg"
        return f"{pid_text}_c{cam}s1_{idx:06d}_0{idx % 10}.jpg"

    layout = {
        "bounding_box_train": [(2, 1), (2, 2), (7, 1), (7, 3), (7, 3), (9, cameras)],
        "query": [(2, 1), (5, 2)],
        "bounding_box_test": [(2, 1), (2, 3), (5, 2), (5, 4), (8, 5), (0, 1), (0, 2), (-1, 1), (-1, 3)],
    }
    for folder, items in layout.items():
        for idx, (pid, cam) in enumerate(items):
            write_image(root / folder / name(pid, cam, idx + 1), idx)
    (root / "bounding_box_test" / "Thumbs.db").write_bytes(b"\x00not an image")
    return {
        "train": [(pid, cam - 1) for pid, cam in layout["bounding_box_train"]],
        "query": [(pid, cam - 1) for pid, cam in layout["query"]],
        "gallery": [(pid, cam - 1) for pid, cam in layout["bounding_box_test"] if pid != -1],
    }


def write_cuhk03_np(root: Path, split: str) -> dict:
    """CUHK03-NP: <root>/cuhk03-np/<split>/ in Market layout with names like 0001_c1_1.png."""
    base = root / "cuhk03-np" / split
    layout = {"bounding_box_train": [(1, 1), (1, 2), (3, 1), (3, 2)], "query": [(10, 1)],
              "bounding_box_test": [(10, 2), (10, 1), (11, 2)]}
    for folder, items in layout.items():
        for idx, (pid, cam) in enumerate(items):
            write_image(base / folder / f"{pid:04d}_c{cam}_{idx + 1}.png", idx)
    return {key: [(p, c - 1) for p, c in items] for key, items in
            zip(("train", "query", "gallery"), layout.values(), strict=True)}


def _ref(f: h5py.File, data: np.ndarray, counter: list[int]):
    counter[0] += 1
    name = f"#refs#/r{counter[0]}"
    dataset = f.create_dataset(name, data=data)
    return dataset.ref


def write_cuhk03_mat(root: Path, people_per_pair: int = 2, empty: tuple[int, int, int] = (0, 1, 9)) -> list[str]:
    """cuhk03_release/cuhk-03.mat as MATLAB v7.3 writes it (HDF5; cells as object references; arrays stored
    column-major, i.e. transposed), with 5 camera pairs x people_per_pair people x 10 image cells each, one cell
    (camera pair, person, image) left empty as in the real file. Returns the image names a loader must extract."""
    names = []
    counter = [0]
    path = root / "cuhk03_release" / "cuhk-03.mat"
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_group("#refs#")
        for split_index, split in enumerate(("detected", "labeled")):
            pair_refs = []
            for pair in range(5):
                cells = np.empty((10, people_per_pair), dtype=h5py.ref_dtype)  # MATLAB (people, 10), transposed
                for person in range(people_per_pair):
                    for image in range(10):
                        if (pair, person, image) == empty:
                            # How MATLAB v7.3 stores an empty array: its dimensions as uint64.
                            cells[image, person] = _ref(f, np.zeros(2, dtype=np.uint64), counter)
                            continue
                        pixels = np.full((6, 3, 3), 10 * pair + person + split_index, dtype=np.uint8)  # H, W, C
                        cells[image, person] = _ref(f, pixels.T, counter)
                        if split == "detected":
                            view = 1 if image < 5 else 2
                            names.append(f"{pair + 1}_{person + 1:03d}_{view}_{image + 1:02d}.png")
                pair_refs.append(_ref(f, cells, counter))
            f.create_dataset(split, data=np.array([pair_refs], dtype=h5py.ref_dtype))
    return names


def write_cuhk03_config(root: Path, split: str, names: list[str]) -> dict:
    """cuhk03_new_protocol_config_<split>.mat with 1-based indices: person id = pair*100 + person; the people of
    pairs 1-3 train, the others are split into query (first image of each view) and gallery (the rest)."""
    labels, cams, train, query, gallery = [], [], [], [], []
    seen = set()
    for index, name in enumerate(names, 1):
        pair, person, view, _ = (int(x) for x in Path(name).stem.split("_"))
        pid = 100 * pair + person
        labels.append(pid)
        cams.append(view)
        if pair <= 3:
            train.append(index)
        elif (pid, view) not in seen:
            seen.add((pid, view))
            query.append(index)
        else:
            gallery.append(index)
    savemat(root / f"cuhk03_new_protocol_config_{split}.mat", {
        "filelist": np.array(names, dtype=object).reshape(-1, 1),
        "labels": np.array(labels, dtype=np.float64).reshape(-1, 1),
        "camId": np.array(cams, dtype=np.float64).reshape(-1, 1),
        "train_idx": np.array(train, dtype=np.float64).reshape(-1, 1),
        "query_idx": np.array(query, dtype=np.float64).reshape(-1, 1),
        "gallery_idx": np.array(gallery, dtype=np.float64).reshape(-1, 1),
    })
    pick = lambda idx: [(names[i - 1], labels[i - 1], cams[i - 1] - 1) for i in idx]  # noqa: E731
    return {"train": pick(train), "query": pick(query), "gallery": pick(gallery)}


def write_msmt17(root: Path, version: str = "MSMT17_V1") -> dict:
    train_dir, test_dir = {"MSMT17_V1": ("train", "test"), "MSMT17_V2": ("mask_train_v2", "mask_test_v2")}[version]
    base = root / "msmt17" / version
    lists = {
        "list_train.txt": (train_dir, [(0, 1), (0, 3), (1, 15)]),
        "list_val.txt": (train_dir, [(2, 2)]),
        "list_query.txt": (test_dir, [(0, 4)]),
        "list_gallery.txt": (test_dir, [(0, 5), (1, 4)]),
    }
    expected = {}
    for list_name, (folder, items) in lists.items():
        lines = []
        for idx, (pid, cam) in enumerate(items):
            rel = f"{pid:04d}/{pid:04d}_{idx:03d}_{cam:02d}_0303morning_{idx:04d}_0.jpg"
            write_image(base / folder / rel, idx)
            lines.append(f"{rel} {pid}\n")
        (base / list_name).write_text("".join(lines))
        expected[list_name] = [(pid, cam - 1) for pid, cam in items]
    return expected


def write_cub(root: Path) -> dict:
    base = root / "CUB_200_2011"
    items = [(1, 1), (2, 1), (3, 100), (4, 101), (5, 150), (6, 200), (7, 200)]  # (image id, class)
    images, labels = [], []
    for image_id, cls in items:
        rel = f"{cls:03d}.Bird_{cls}/Bird_{cls}_{image_id:04d}.jpg"
        write_image(base / "images" / rel, image_id, mode="L" if image_id == 3 else "RGB")  # CUB has grey ones
        images.append(f"{image_id} {rel}\n")
        labels.append(f"{image_id} {cls}\n")
    (base / "images.txt").write_text("".join(images))
    (base / "image_class_labels.txt").write_text("".join(labels))
    return {"train": [c for _, c in items if c <= 100], "test": [c for _, c in items if c > 100]}


def write_cars(root: Path) -> dict:
    base = root / "cars196"
    classes = [1, 1, 98, 99, 196, 150]
    dtype = [("relative_im_path", object), ("bbox_x1", object), ("bbox_y1", object), ("bbox_x2", object),
             ("bbox_y2", object), ("class", object), ("test", object)]
    annotations = np.zeros((1, len(classes)), dtype=dtype)
    for i, cls in enumerate(classes):
        rel = f"car_ims/{i + 1:06d}.jpg"
        write_image(base / rel, i)
        annotations[0, i] = (rel, np.uint8(1), np.uint8(1), np.uint8(3), np.uint8(7), np.uint8(cls), np.uint8(i % 2))
    savemat(base / "cars_annos.mat", {"annotations": annotations,
                                      "class_names": np.array([f"car {i}" for i in range(196)], dtype=object)})
    return {"train": [c for c in classes if c <= 98], "test": [c for c in classes if c > 98]}


def write_sop(root: Path) -> dict:
    base = root / "Stanford_Online_Products"
    header = "image_id class_id super_class_id path\n"
    train = [(1, 1, "bicycle"), (2, 1, "bicycle"), (3, 5, "chair")]
    test = [(4, 11319, "mug"), (5, 11319, "mug"), (6, 22634, "lamp")]
    for list_name, items in (("Ebay_train.txt", train), ("Ebay_test.txt", test)):
        lines = [header]
        for image_id, cls, sup in items:
            rel = f"{sup}_final/{cls}_{image_id}.JPG"
            write_image(base / rel, image_id)
            lines.append(f"{image_id} {cls} 1 {rel}\n")
        (base / list_name).write_text("".join(lines))
    return {"train": [c for _, c, _ in train], "test": [c for _, c, _ in test]}


def write_inshop(root: Path) -> dict:
    base = root / "InShop"
    items = [("WOMEN/Dresses/id_00000002/02_1_front.jpg", 2, "train"),
             ("WOMEN/Dresses/id_00000002/02_2_side.jpg", 2, "train"),
             ("MEN/Denim/id_00000080/01_1_front.jpg", 80, "train"),
             ("MEN/Denim/id_00000007/01_1_front.jpg", 7, "query"),
             ("MEN/Denim/id_00000007/01_2_side.jpg", 7, "gallery"),
             ("MEN/Denim/id_00000012/01_1_front.jpg", 12, "gallery")]
    lines = [f"{len(items)}\n", "image_name item_id evaluation_status\n"]
    for rel, item, status in items:
        write_image(base / "img" / rel, item)
        # The real file pads columns with runs of spaces.
        lines.append(f"img/{rel}      id_{item:08d}       {status}\n")
    (base / "Eval").mkdir(parents=True, exist_ok=True)
    (base / "Eval" / "list_eval_partition.txt").write_text("".join(lines))
    return {status: [item for _, item, s in items if s == status] for status in ("train", "query", "gallery")}
