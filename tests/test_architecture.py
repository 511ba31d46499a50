"""The package's imports obey the layering of docs/architecture.md.

The table in that page is the rule: each row names parts of ``bdb_ext`` (a sub-package or a top-level module) and
the parts they may import. This test reads the table and every import statement of the package (also those inside
functions), so the page and the code cannot drift apart silently.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "bdb_ext"
ARCHITECTURE = ROOT / "docs" / "architecture.md"


def _parts_in(cell: str) -> set[str]:
    return set(re.findall(r"`([A-Za-z_][\w]*)`", cell))


def layering_rules() -> dict[str, set[str]]:
    """{part: the parts it may import}, from the "may import" table of docs/architecture.md."""
    rules: dict[str, set[str]] = {}
    in_table = False
    for line in ARCHITECTURE.read_text().splitlines():
        if line.startswith("| layer |"):
            in_table = True
            continue
        if in_table and not line.startswith("|"):
            break
        if not in_table or set(line) <= set("|- "):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        for part in _parts_in(cells[1]):
            rules[part] = _parts_in(cells[2])
    return rules


def _part_of(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def _module_name(path: Path) -> str:
    return ".".join(("bdb_ext", *path.relative_to(PACKAGE).with_suffix("").parts))


def _imported_parts(source: str, module: str) -> set[tuple[str, int]]:
    """The bdb_ext parts that ``source``, the text of module ``module`` (``x.__init__`` for a package), imports,
    with the line of each import."""
    package = module.rsplit(".", 1)[0]
    found: set[tuple[str, int]] = set()
    for node in ast.walk(ast.parse(source, module)):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                base_name = ".".join(base + ([node.module] if node.module else []))
            else:
                base_name = node.module or ""
            # `from .. import ops` imports the sub-package ops; `from ..ops import x` imports from ops.
            targets = [f"{base_name}.{alias.name}" for alias in node.names] if base_name == "bdb_ext" else [base_name]
        else:
            continue
        for target in targets:
            pieces = target.split(".")
            if pieces[0] == "bdb_ext" and len(pieces) > 1:
                found.add((pieces[1], node.lineno))
    return found


def test_the_table_covers_every_part_of_the_package() -> None:
    rules = layering_rules()
    parts = {_part_of(path) for path in PACKAGE.rglob("*.py")}
    assert parts <= set(rules), f"parts missing from docs/architecture.md's table: {sorted(parts - set(rules))}"
    assert set(rules) <= parts, f"docs/architecture.md names parts that do not exist: {sorted(set(rules) - parts)}"


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_follow_the_layering(path: Path) -> None:
    rules = layering_rules()
    part = _part_of(path)
    allowed = rules[part] | {part}
    imported_parts = _imported_parts(path.read_text(), _module_name(path))
    wrong = sorted((line, imported) for imported, line in imported_parts if imported not in allowed)
    assert not wrong, (f"{path.relative_to(ROOT)} ({part}) imports parts its layer may not: "
                       + ", ".join(f"{name} (line {line})" for line, name in wrong))


def test_the_import_reader_sees_every_form() -> None:
    # The rule is only as good as the import reader: relative and absolute imports, nested in a function, from a
    # package's __init__ or a module, of a sub-package or of a name in one, must all be found.
    source = ("from .. import ops, reference\nfrom .rectangles import x\n"
              "def f():\n    from ..engine import Trainer\n    import bdb_ext.cli.train_command\n")
    assert _imported_parts(source, "bdb_ext.layers.drop") == {
        ("ops", 1), ("reference", 1), ("layers", 2), ("engine", 4), ("cli", 5)}
    assert _imported_parts("from .layers import A\nfrom . import ops\n", "bdb_ext.__init__") == {
        ("layers", 1), ("ops", 2)}
