"""The documentation: README.md's promises (its length, its commands, few commit hashes), every relative link and
anchor in README.md, docs/ and the study READMEs resolving, and the study READMEs' generated parts (their table and
provenance), which `make figure` rewrites from the records and so must leave unchanged."""

import csv
import filecmp
import re
import runpy
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from roadmap.results.provenance import provenance_markdown, update_readme

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
STUDY_READMES = sorted((ROOT / "experiments").glob("*/README.md"))
PAGES = [README, *DOCS, *STUDY_READMES]
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)
CODE_SPAN = re.compile(r"`[^`\n]*`")
# A commit hash standing alone, with a digit and a letter (so neither a number nor a word); not part of a file
# name (resnet50-0676ba61.pth is torchvision's checksum).
HASH = re.compile(r"(?<![\w./-])(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{7,40}(?![\w/-])")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped but for - and _, spaces to hyphens."""
    text = CODE_SPAN.sub(lambda m: m.group(0)[1:-1], heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for line in FENCE.sub("", page.read_text()).splitlines():
        if match := re.match(r"#{1,6}\s+(.*?)\s*#*$", line):
            base = slug(match.group(1))
            found.add(base if base not in seen else f"{base}-{seen[base]}")
            seen[base] = seen.get(base, 0) + 1
    return found


def links(page: Path) -> list[str]:
    text = FENCE.sub("", page.read_text())
    return [target for line in text.splitlines() for target in LINK.findall(CODE_SPAN.sub("", line))]


def test_link_and_anchor_parsing():
    page_text = "# A `make figure` run, again\n## Set-up: tests\n## Set-up: tests\n```\n# not [a](heading.md)\n```\n"
    page_text += "[x](a.md#b) ![fig](f.png) `[no](code.md)` [nested [brackets]](c.md \"title\") <https://x.org>\n"
    page = Path("/tmp") / "_roadmap_docs_test.md"
    page.write_text(page_text)
    try:
        assert links(page) == ["a.md#b", "f.png", "c.md"]
        assert anchors(page) == {"a-make-figure-run-again", "set-up-tests", "set-up-tests-1"}
    finally:
        page.unlink()
    assert HASH.findall("at 39a499e and c123025, not in resnet50-0676ba61.pth, 1234567 or deadbeef") == [
        "39a499e", "c123025"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    assert page.exists()
    broken = []
    for target in links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:: not this repository's
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no {resolved.relative_to(ROOT) if resolved.is_relative_to(ROOT) else resolved}")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading with anchor #{anchor} in {path or page.name}")
    assert not broken, f"{page.relative_to(ROOT)}: broken links:\n" + "\n".join(broken)


def test_readme_is_short_says_the_commands_that_ci_runs_and_names_few_commits():
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    for command in ("make run", ".venv/bin/python run.py +step=inverted_bottleneck seed=0,1,2 -m", "make test"):
        assert re.search(rf"^\s*{re.escape(command)}(\s|$)", text, re.MULTILINE), command
    make = (ROOT / "Makefile").read_text()  # make run is the main job, after installing
    assert re.search(r"^run: install ##", make, re.MULTILINE) and "STEP ?= inverted_bottleneck" in make
    assert "make test" in (ROOT / ".ci" / "run").read_text().splitlines()[-1]
    assert len(set(HASH.findall(FENCE.sub("", text)))) <= 2
    assert len({h for page in DOCS for h in HASH.findall(page.read_text())}) <= 5
    assert DOCS and all(len(page.read_text().splitlines()) <= 300 for page in DOCS), [
        (page.name, len(page.read_text().splitlines())) for page in DOCS]


def record(commit: str | None, name: str, seed: int, **fields) -> dict:
    return {"status": "completed", "git_commit": commit, "name": name, "seed": seed, "device": "AMD EPYC",
            "devices": 1, "num_nodes": 1, "wall_seconds": 90.0, **fields}


def test_provenance_table_from_the_records_own_fields():
    records = [
        record("b" * 40, "gelu", 0, started_at="2026-12-05T23:50:00+00:00", finished_at="2026-12-06T00:20:10+00:00"),
        record("b" * 40, "gelu", 1, started_at="2026-12-05T22:10:00+01:00", finished_at="2026-12-05T23:40:00+00:00"),
        record("a1" * 20, "baseline", 0),
        record("a1" * 20, "baseline", 1),
        record("a1" * 20, "gelu", 3, status="failed"),
        record("c2" * 20, "gelu", 5, device="NVIDIA H100", devices=4, num_nodes=2, wall_seconds=600.0,
               started_at="2026-12-04T08:00:00+00:00", finished_at="2026-12-04T08:10:00+00:00"),
        record(None, "baseline", 2),
    ]
    table = provenance_markdown(records).splitlines()
    assert table[0].startswith("7 records from 4 commits.")
    assert table[4:] == [  # undated commits first, by hash; then by their first start
        "| `a1a1a1a` | 3 (1 failed) | all 2 | 0-1, 3 | AMD EPYC | 4 min | not recorded |",
        "| `unknown` | 1 | baseline | 2 | AMD EPYC | 2 min | not recorded |",
        "| `c2c2c2c` | 1 | gelu | 5 | NVIDIA H100 x 8 | 10 min | 2026-12-04 08:00 to 08:10 |",
        "| `bbbbbbb` | 2 | gelu | 0-1 | AMD EPYC | 3 min | 2026-12-05 21:10 to 2026-12-06 00:20 |",
    ]
    by_group = provenance_markdown(records, lambda r: "one" if r["seed"] < 2 else "two").splitlines()
    assert [row.split(" | ")[2] for row in by_group[4:]] == ["all 2", "two", "two", "one"]


def test_readme_sections_are_rewritten_between_their_markers_and_nothing_else(tmp_path):
    assert update_readme(tmp_path, {"provenance": "x"}) is None  # a sweep folder, no records/: left alone
    assert not (tmp_path / "README.md").exists()
    (tmp_path / "records").mkdir()
    readme = update_readme(tmp_path, {"table": "| a |\n", "provenance": "first"})
    begun = readme.read_text()
    assert begun.startswith(f"# {tmp_path.name}\n\n## Table\n\n<!-- begin generated: table -->")
    assert begun.index("| a |") < begun.index("## Provenance") < begun.index("first")
    readme.write_text(begun.replace("## Table", "Prose before.\n\n## Table") + "\nProse after, [a link](x.md).\n")
    update_readme(tmp_path, {"provenance": "second\n"})
    text = readme.read_text()
    assert "first" not in text and "second" in text and "| a |" in text
    assert text.startswith(f"# {tmp_path.name}\n\nProse before.") and text.endswith("Prose after, [a link](x.md).\n")
    update_readme(tmp_path, {"provenance": "second"})
    assert readme.read_text() == text  # the same records, the same bytes


def figure_commands(*variables: str) -> list[list[str]]:
    """What `make figure` runs, from make itself (the target's prerequisite, the installed venv, taken as made)."""
    shown = subprocess.run(["make", "-n", "-s", "-o", ".venv/.installed", "figure", *variables], cwd=ROOT,
                           check=True, capture_output=True, text=True).stdout
    commands = [shlex.split(line) for line in shown.splitlines() if line.strip()]
    assert commands, "make figure runs nothing"
    for argv in commands:
        assert Path(argv[0]).name.startswith("python") and argv[1].startswith("scripts/"), (
            f"make figure runs `{shlex.join(argv)}`: this test runs only `python scripts/<name>.py ...` in-process")
    return commands


def test_make_figure_leaves_the_tree_unchanged(tmp_path, monkeypatch):
    """Every command of `make figure` run in-process on a copy of experiments/: every file the same, byte for byte
    (the tables, the figures, the study READMEs with their generated table and provenance), and nothing new."""
    shutil.copytree(ROOT / "experiments", tmp_path / "experiments")
    monkeypatch.chdir(tmp_path)
    for argv in figure_commands():
        monkeypatch.setattr(sys, "argv", argv[1:])
        runpy.run_path(str(ROOT / argv[1]), run_name="__main__")

    def files(root: Path) -> set[Path]:
        return {p.relative_to(root) for p in root.rglob("*") if p.is_file()}

    before, after = files(ROOT / "experiments"), files(tmp_path / "experiments")
    assert after == before, f"make figure wrote {sorted(map(str, after - before))}"
    _, changed, errors = filecmp.cmpfiles(ROOT / "experiments", tmp_path / "experiments", sorted(map(str, before)),
                                          shallow=False)
    assert not changed and not errors, f"make figure changed {changed}{errors}: run it and commit what it wrote"


def test_make_figure_tabulates_the_gpu_roadmap_and_its_table_across_rungs_once_it_has_records(tmp_path, monkeypatch):
    """make gpu-roadmap's folder, given the CPU's records as if a GPU had written them: make figure writes its table,
    its figure and the table across the two rungs, where every step reads the same at both."""
    gpu = tmp_path / "experiments" / "gpu_roadmap_given"  # absolute: make looks for its records from the repository
    shutil.copytree(ROOT / "experiments" / "fashion_mnist_proxy", tmp_path / "experiments" / "fashion_mnist_proxy")
    shutil.copytree(ROOT / "experiments" / "fashion_mnist_proxy" / "records", gpu / "records")
    commands = [argv for argv in figure_commands(f"GPU_EXPERIMENT={gpu}") if str(gpu) in " ".join(argv)]
    assert [argv[1] for argv in commands] == ["scripts/aggregate.py", "scripts/figure.py", "scripts/cross_rung.py"]
    monkeypatch.chdir(tmp_path)
    for argv in commands:
        monkeypatch.setattr(sys, "argv", argv[1:])
        runpy.run_path(str(ROOT / argv[1]), run_name="__main__")
    assert (gpu / "table.md").read_text() == (ROOT / "experiments/fashion_mnist_proxy/table.md").read_text()
    assert (gpu / "roadmap.png").stat().st_size > 0
    rows = list(csv.DictReader((gpu / "rungs.csv").open()))
    assert len(rows) == 16  # every step after the baseline
    for row in rows:
        for key in ("", " ci_low", " ci_high"):
            assert row[f"CPU 48 px{key}"] == row[f"GPU 48 px{key}"], row["step"]
        assert row["reading"].startswith("holds"), row["step"]


# The commands the pages show, checked as far as a CPU allows without training: in README.md and docs/, every
# line of a code block (a `\` continuing it) and every inline code span.
COMMAND_PAGES = [README, *DOCS]
PYTHON_COMMAND = re.compile(
    r"(?:^|&&|;)\s*(?:\S+=\S+\s+)*(?:\.venv/bin/)?python3?\s+((?:run|scripts/\w+)\.py)\b(.*?)(?=&&|;|$)")
MAKE_COMMAND = re.compile(
    r"(?:^|&&|;)\s*(?:[A-Z_]+=\S+\s+)*make\s+(?:[A-Z_]+=(?:'[^']*'|\"[^\"]*\"|\S+)\s+)*([a-z][\w-]*)")
PLACEHOLDER = re.compile(r"<[^>]*>|\.\.\.|\b[A-Z]{2,}\b")  # <step>, ..., OUT: a command to fill in, not to compose
# A repository path in a code span: one of the top-level folders, no placeholder or glob in it.
REPO_PATH = re.compile(r"(?:conf|docs|roadmap|scripts|tests|experiments|\.ci)/[\w./-]*|run\.py|Makefile")


def shown_commands(page: Path) -> list[str]:
    text = page.read_text()
    lines = [line for block in re.findall(r"^```[^\n]*\n(.*?)^```", text, re.DOTALL | re.MULTILINE)
             for line in block.replace("\\\n", " ").splitlines()]
    return [*lines, *(span[1:-1] for span in CODE_SPAN.findall(FENCE.sub("", text)))]


def python_commands() -> list[tuple[str, str, list[str]]]:
    """(page, script, its arguments) for every `python run.py ...` and `python scripts/x.py ...` shown."""
    found = []
    for page in COMMAND_PAGES:
        for command in shown_commands(page):
            for script, args in PYTHON_COMMAND.findall(command):
                try:
                    words = shlex.split(args, comments=True)
                except ValueError:  # a placeholder's apostrophe (<the runs' folder>): words enough to name the script
                    words = args.split()
                found.append((page.name, script, words))
    return found


def makefile_targets() -> set[str]:
    return set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), re.MULTILINE))


def test_command_parsing():
    assert PYTHON_COMMAND.findall("pip x && export A=1 B=2 && python3 scripts/gpu_roadmap.py --archive a.tgz # x") == [
        ("scripts/gpu_roadmap.py", " --archive a.tgz # x")]
    assert PYTHON_COMMAND.findall(".venv/bin/python run.py +step=gelu seed=0") == [("run.py", " +step=gelu seed=0")]
    assert MAKE_COMMAND.findall("SEEDS=0,1 make roadmap") == ["roadmap"]
    assert MAKE_COMMAND.findall("make RUNGS='--rung \"a=b\"' cross-rung && make figure") == ["cross-rung", "figure"]
    assert not MAKE_COMMAND.findall("`make` takes a target") and not MAKE_COMMAND.findall("cmake build")


@pytest.mark.parametrize("page", COMMAND_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_make_target_shown_exists(page):
    targets = makefile_targets()
    missing = {t for command in shown_commands(page) for t in MAKE_COMMAND.findall(command) if t not in targets}
    assert not missing, f"{page.name} shows make targets the Makefile lacks: {sorted(missing)}"


@pytest.mark.parametrize("page", COMMAND_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_repository_path_in_code_exists(page):
    spans = [span[1:-1] for span in CODE_SPAN.findall(FENCE.sub("", page.read_text()))]
    paths = {m.group(0).rstrip(".") for span in spans if " " not in span and not re.search(r"[<*{$]", span)
             and (m := REPO_PATH.fullmatch(span))}
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert not missing, f"{page.name} names paths that do not exist: {missing}"


def test_every_python_command_shown_names_a_script_that_exists():
    missing = sorted({f"{page}: {script}" for page, script, _ in python_commands() if not (ROOT / script).is_file()})
    assert not missing, missing


def first_values(overrides: list[str]) -> list[str]:
    """A multirun's overrides with each sweep at its first value, as one job of it composes."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    return [f"{o.get_key_element()}={next(o.sweep_string_iterator())}" if o.is_sweep_override() else o.input_line
            for o in parsed]


RUN_COMMANDS = sorted({(page, tuple(args)) for page, script, args in python_commands() if script == "run.py"
                       and not PLACEHOLDER.search(" ".join(args))})


@pytest.mark.parametrize(("page", "args"), RUN_COMMANDS, ids=[f"{p}:{' '.join(a)}" for p, a in RUN_COMMANDS])
def test_every_run_command_shown_composes(page, args):
    """Each `python run.py ...` shown composes as run.py would compose it (a multirun: its first job), so that
    a renamed group, key or delta cannot leave a page's command failing."""
    from roadmap.config.ablation import expand_reverts
    from roadmap.config.composition import compose

    overrides = [a for a in args if not a.startswith("-")]
    cfg = compose(first_values(expand_reverts(overrides)) if "-m" in args or "--multirun" in args else overrides)
    assert cfg.name


SCRIPTS = sorted({script for _, script, _ in python_commands() if script.startswith("scripts/")})


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_shown_answers_help(script, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [script, "--help"])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(ROOT / script), run_name="__main__")
    assert exit_.value.code in (0, None), f"{script} --help exited {exit_.value.code}"
    assert "usage" in capsys.readouterr().out.lower()
