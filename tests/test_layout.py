"""The package's layout: docs/layout.md names every module under roadmap/, each subpackage imports only from itself
and the layers below it (imports inside functions included), no import circle, no module over 450 lines, fewer than
8 modules directly under roadmap/, and each subpackage hands on the names the others import from it."""

import ast
import importlib
import inspect
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "roadmap"
LAYOUT = ROOT / "docs" / "layout.md"
# Bottom to top; "" is roadmap/'s own modules. A module imports from its own subpackage and the layers below it.
LAYERS = {"": 0, "model": 1, "data": 1, "config": 2, "results": 3, "training": 4, "figures": 5, "studies": 6,
          "tools": 7}
MAX_LINES = 450
MAX_TOP_LEVEL = 7  # modules directly under roadmap/, __init__.py included
MODULES = sorted(PACKAGE.rglob("*.py"))


def dotted(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def subpackage(name: str) -> str:
    """The subpackage of module `roadmap.<...>`: "" for roadmap/'s own modules."""
    parts = name.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()) else ""


def imports(path: Path) -> list[tuple[str, list[str], int]]:
    """Every import of `path`, at any depth: (module imported from, names, line), relative imports resolved."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = dotted(path).split(".")
                base = base[:len(base) - node.level + (path.name == "__init__.py")]
                module = ".".join([*base, module] if module else base)
            found.append((module, [alias.name for alias in node.names], node.lineno))
    return found


def targets(module: str, names: list[str]) -> list[str]:
    """The roadmap modules an import reaches: `from roadmap.config import schema` reaches roadmap.config.schema."""
    if not (module == "roadmap" or module.startswith("roadmap.")):
        return []
    folder = PACKAGE.parent.joinpath(*module.split("."))
    submodules = [f"{module}.{name}" for name in names if (folder / f"{name}.py").is_file()
                  or (folder / name).is_dir()]
    return submodules or [module]


def test_layout_page_names_every_module_under_its_subpackage():
    text = LAYOUT.read_text()
    sections = re.split(r"^## ", text, flags=re.MULTILINE)
    named: dict[str, set[str]] = {}
    for section in sections:
        heading = re.match(r"`(?:roadmap|(\w+))/` \(layer (\d)\)", section)
        if heading:
            package = heading.group(1) or ""
            assert LAYERS[package] == int(heading.group(2)), f"docs/layout.md: {package or 'roadmap'}/ is in layer " \
                f"{LAYERS[package]}"
            named[package] = set(re.findall(r"^\| `(\w+)\.py` \|", section, flags=re.MULTILINE))
    on_disk: dict[str, set[str]] = {}
    for path in MODULES:
        if path.name != "__init__.py":
            on_disk.setdefault(subpackage(dotted(path)), set()).add(path.stem)
    assert set(named) == set(LAYERS) == set(on_disk), "docs/layout.md needs one section per subpackage"
    for package in LAYERS:
        where = f"roadmap/{package + '/' if package else ''}"
        unnamed, gone = sorted(on_disk[package] - named[package]), sorted(named[package] - on_disk[package])
        assert not unnamed, f"docs/layout.md does not name {unnamed} in {where}"
        assert not gone, f"docs/layout.md names {gone}, which {where} does not hold"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_run_only_downwards(path):
    mine = subpackage(dotted(path))
    upwards = [f"line {line}: {target}" for module, names, line in imports(path) for target in targets(module, names)
               if subpackage(target) != mine and LAYERS[subpackage(target)] >= LAYERS[mine]]
    assert not upwards, f"{path.relative_to(ROOT)} (layer {LAYERS[mine]}) imports from its layer or above: {upwards}"


def test_roadmap_own_modules_import_only_the_standard_library():
    """The Makefile runs `from roadmap.steps import STEPS` with a bare system Python, without torch or Hydra."""
    for path in PACKAGE.glob("*.py"):
        outside = [module for module, _, _ in imports(path) if module.split(".")[0] not in sys.stdlib_module_names
                   and module.split(".")[0] != "roadmap" and module != "__future__"]
        assert not outside, f"{path.relative_to(ROOT)} imports {outside}"
    assert not imports(PACKAGE / "__init__.py")


def test_no_import_circle():
    graph = {dotted(p): {t for module, names, _ in imports(p) for t in targets(module, names)} for p in MODULES}
    done: set[str] = set()

    def visit(node: str, trail: list[str]) -> None:
        if node in trail:
            raise AssertionError("import circle: " + " -> ".join(trail[trail.index(node):] + [node]))
        if node not in done:
            for target in sorted(graph.get(node, ())):
                visit(target, [*trail, node])
            done.add(node)

    for node in sorted(graph):
        visit(node, [])


def test_modules_are_short_and_few_sit_at_the_top():
    long = {str(p.relative_to(ROOT)): n for p in MODULES if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"over {MAX_LINES} lines: {long}"
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL, f"{len(top)} modules directly under roadmap/: {top}"


def test_each_subpackage_hands_on_what_the_others_import_from_it():
    """A name that another subpackage, run.py or scripts/ imports from a subpackage's module (a command's `main`
    aside) is in the subpackage's `__all__`, and every name there is its module's."""
    importers = [*MODULES, ROOT / "run.py", *sorted((ROOT / "scripts").glob("*.py"))]
    wanted: dict[str, set[str]] = {}
    for path in importers:
        mine = subpackage(dotted(path)) if path.is_relative_to(PACKAGE) else None
        for module, names, _ in imports(path):
            target = module.split(".")
            if target[0] == "roadmap" and len(target) == 3 and target[1] != mine:
                wanted.setdefault(target[1], set()).update(n for n in names if n != "main")
    for package in [p for p in LAYERS if p]:
        handed_on = importlib.import_module(f"roadmap.{package}")
        missing = wanted.get(package, set()) - set(handed_on.__all__)
        assert not missing, f"roadmap/{package}/__init__.py does not hand on {sorted(missing)}"
        for name in handed_on.__all__:
            value = getattr(handed_on, name)
            if inspect.isclass(value) or inspect.isfunction(value):
                assert value.__module__.startswith(f"roadmap.{package}."), f"{package}.{name} is {value.__module__}'s"
