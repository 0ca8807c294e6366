"""ImageNet class names and a data folder's ``labels.csv``.

``data/imagenet_classes.txt`` lists the 1000 ILSVRC-2012 classes in the standard order
(line i = class i, 0 = tench), each with its comma-separated synonyms, as derived from
Coral's ``imagenet_labels.txt`` (Apache-2.0; see the file's header).

``labels.csv`` (in a ``--data-dir``): one ``file,label`` row per image, an optional
``file,label`` header, ``#`` comments. A label is a class index (``934``) or a name equal,
ignoring case and extra spaces, to one of a class's synonyms (``hot dog``, ``hotdog``). A
name shared by two classes (``crane``: the bird and the machine) is refused: use the index.
"""

from __future__ import annotations

import csv
import functools
import hashlib
from collections.abc import Sequence
from pathlib import Path

from wattbench.core.errors import ConfigError

CLASSES_FILE = Path(__file__).resolve().with_name("data") / "imagenet_classes.txt"
LABELS_FILE = "labels.csv"
NUM_CLASSES = 1000


def _norm(name: str) -> str:
    return " ".join(name.lower().split())


@functools.cache
def class_names() -> tuple[tuple[str, ...], ...]:
    """Per class (index order), its synonyms as written."""
    lines = [
        line
        for line in CLASSES_FILE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    if len(lines) != NUM_CLASSES:
        raise RuntimeError(f"{CLASSES_FILE} lists {len(lines)} classes, expected {NUM_CLASSES}")
    return tuple(tuple(s.strip() for s in line.split(",") if s.strip()) for line in lines)


@functools.cache
def _by_name() -> dict[str, tuple[int, ...]]:
    index: dict[str, list[int]] = {}
    for i, names in enumerate(class_names()):
        for n in names:
            index.setdefault(_norm(n), [])
            if i not in index[_norm(n)]:
                index[_norm(n)].append(i)
    return {k: tuple(v) for k, v in index.items()}


def class_name(index: int) -> str:
    """The first synonym of class ``index`` (``934`` → ``hotdog``)."""
    return class_names()[index][0]


def resolve_label(label: str, where: str = "label") -> int:
    """A class index from an index or a class name; ConfigError naming the problem."""
    text = label.strip()
    if text.lstrip("-").isdigit():
        i = int(text)
        if not 0 <= i < NUM_CLASSES:
            raise ConfigError(f"{where}: class index {i} is outside 0..{NUM_CLASSES - 1}")
        return i
    found = _by_name().get(_norm(text))
    if not found:
        raise ConfigError(
            f"{where}: {text!r} is not an ImageNet class name (see "
            f"suites/data/imagenet_classes.txt; or give the class index, 0 = tench)"
        )
    if len(found) > 1:
        which = ", ".join(f"{i} ({class_name(i)})" for i in found)
        raise ConfigError(f"{where}: {text!r} names {len(found)} classes ({which}): use the index")
    return found[0]


def read_labels_csv(path: Path, files: Sequence[str]) -> tuple[list[int | None], str]:
    """Per file of ``files`` its class (None when ``labels.csv`` has no row for it), and a
    digest of the resolved labels. A row naming a file not in ``files`` is a ConfigError
    (a typo would otherwise silently leave an image unlabelled)."""
    known = set(files)
    labels: dict[str, int] = {}
    with path.open(newline="", encoding="utf-8-sig") as fh:
        for lineno, row in enumerate(csv.reader(fh), 1):
            cells = [c.strip() for c in row]
            if not cells or not any(cells) or cells[0].startswith("#"):
                continue
            if lineno == 1 and [c.lower() for c in cells[:2]] == ["file", "label"]:
                continue
            where = f"{path.name}:{lineno}"
            if len(cells) != 2 or not cells[0] or not cells[1]:
                raise ConfigError(f"{where}: expected 'file,label', got {','.join(row)!r}")
            name, label = cells
            if name not in known:
                raise ConfigError(f"{where}: no image {name!r} in {path.parent}")
            if name in labels:
                raise ConfigError(f"{where}: {name!r} is labelled twice")
            labels[name] = resolve_label(label, where)
    if not labels:
        raise ConfigError(f"{path} labels no image: write 'file,label' rows or remove it")
    digest = hashlib.sha256(
        "\n".join(f"{f},{labels[f]}" for f in sorted(labels)).encode()
    ).hexdigest()
    return [labels.get(f) for f in files], digest
