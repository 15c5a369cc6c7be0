"""The generated parts of a study's README.md: its table and where its records came from, rewritten from the records
by `make figure` between marker comments, so that what the README says about them can never drift from the records.

Provenance is read from each record's own fields: `git_commit` (the code that made it), `device` (the machine),
`seed`, `wall_seconds`, and `started_at`/`finished_at` (UTC) where a record carries them (records made before those
fields were added do not).
"""

import re
import warnings
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path

from roadmap.results.records import RECORDS, RecordWarning, atomic_write_text, load_records

README = "README.md"
BEGIN, END = "<!-- begin generated: {} -->", "<!-- end generated: {} -->"
NOTE = "<!-- written by `make figure` from the records (roadmap/results/provenance.py): edit the code, not this -->"


def _seeds(seeds: Iterable[int]) -> str:
    """Seeds as runs of consecutive numbers: 0-2, 5."""
    runs: list[list[int]] = []
    for seed in sorted(set(seeds)):
        if runs and seed == runs[-1][-1] + 1:
            runs[-1].append(seed)
        else:
            runs.append([seed])
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def _utc(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp).astimezone(timezone.utc)


def _dates(records: list[dict]) -> str:
    """First start to last finish, UTC, to the minute; the day once where both fall on it."""
    starts = [_utc(r["started_at"]) for r in records if r.get("started_at")]
    ends = [_utc(r["finished_at"]) for r in records if r.get("finished_at")]
    if not starts or not ends:
        return "not recorded"
    first, last = min(starts), max(ends)
    text = f"{first:%Y-%m-%d %H:%M} to {last:%H:%M}" if first.date() == last.date() else \
        f"{first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M}"
    undated = len(records) - len(starts)
    return text + (f" ({undated} undated)" if undated else "")


def _machine(records: list[dict]) -> str:
    """The device names, with the number of devices a run used where it used more than one."""
    names = set()
    for r in records:
        count = (r.get("devices") or 1) * (r.get("num_nodes") or 1)
        names.add(f"{r.get('device') or 'unknown'}" + (f" x {count}" if count > 1 else ""))
    return ", ".join(sorted(names))


def provenance_markdown(records: list[dict], what: Callable[[dict], str] = lambda r: r["name"]) -> str:
    """A table of the commits that made `records` (completed and failed), one row per commit: how many records,
    of what (`what(record)`: the run's name, or a calibration's candidate), which seeds, on which machine, their
    summed run time and their dates. Commits are in the order of their first start; undated ones first, by hash."""
    by_commit: dict[str, list[dict]] = {}
    for record in records:
        by_commit.setdefault(record.get("git_commit") or "unknown", []).append(record)
    every = {what(r) for r in records}

    def first_start(item: tuple[str, list[dict]]) -> tuple[str, str]:
        commit, made = item
        starts = [_utc(r["started_at"]).isoformat() for r in made if r.get("started_at")]
        return (min(starts) if starts else "", commit)

    lines = [
        f"{len(records)} records from {len(by_commit)} commit{'s' * (len(by_commit) > 1)}. Run time: the runs'"
        " `wall_seconds` summed (a resumed run counts from its last start). Dates: UTC, the first start to the last"
        " finish, where records carry `started_at` and `finished_at`; rows in the order of their first start, those"
        " without dates first. `git show <commit>` shows the code.",
        "",
        "| commit | records | of | seeds | machine | run time | dates (UTC) |",
        "|---|---|---|---|---|---|---|",
    ]
    for commit, made in sorted(by_commit.items(), key=first_start):
        failed = sum(r.get("status") == "failed" for r in made)
        names = sorted({what(r) for r in made})
        of = f"all {len(every)}" if len(every) > 1 and set(names) == every else ", ".join(names)
        minutes = sum(r.get("wall_seconds") or 0.0 for r in made) / 60
        lines.append("| " + " | ".join([
            f"`{commit[:7]}`", f"{len(made)}" + (f" ({failed} failed)" if failed else ""), of,
            _seeds(r["seed"] for r in made), _machine(made), f"{minutes:.0f} min", _dates(made),
        ]) + " |")
    return "\n".join(lines) + "\n"


def _block(name: str, text: str) -> str:
    return f"{BEGIN.format(name)}\n{NOTE}\n\n{text.rstrip()}\n\n{END.format(name)}"


def update_readme(folder: Path, sections: dict[str, str]) -> Path | None:
    """Rewrite each named generated section of `folder`'s README.md with its text, if `folder` is an experiment
    (it has a records/ folder): between its markers where the README has them, else appended as a `##` section
    (and a README begun) so that every study shows its own. Other folders (a sweep's) are left alone."""
    if not (folder / RECORDS).is_dir():
        return None
    path = folder / README
    text = path.read_text() if path.exists() else f"# {folder.name}\n"
    for name, body in sections.items():
        pattern = re.compile(re.escape(BEGIN.format(name)) + r".*?" + re.escape(END.format(name)), re.DOTALL)
        if found := pattern.search(text):
            text = text[:found.start()] + _block(name, body) + text[found.end():]
        else:
            text = f"{text.rstrip()}\n\n## {name.capitalize()}\n\n{_block(name, body)}\n"
    atomic_write_text(path, text)
    return path


def table_section(markdown: str) -> str:
    """A study's table.md as a README section: its `#` title in bold, so that it nests under the README's headings."""
    title, _, rest = markdown.partition("\n")
    return f"**{title.removeprefix('# ')}**\n{rest}" if title.startswith("# ") else markdown


def study_records(records_dir: Path) -> list[dict]:
    """Every usable record under an experiment's records/, completed or failed, quietly: the tables that were
    made from them already named the records they skip."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RecordWarning)
        return load_records(records_dir, roadmap_only=False, completed_only=False)
