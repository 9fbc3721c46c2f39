"""`tellkit report FOLDER`: (re)write report.md/report.html from what a run, compare or sweep folder holds,
without training or evaluating anything (a sweep's partial results at any time)."""

from __future__ import annotations

import json
from pathlib import Path

from ..config.load import load_config, validate
from ..errors import TellkitError
from ..owned import plan_record_kind
from ..report.compare_report import write_compare_report
from ..report.run_report import write_run_report
from .execute.plan import load_plan
from .sweep import summarise


def write_folder_report(folder: str | Path) -> tuple[Path, Path, dict | None]:
    """(report.md, report.html, the sweep's summary, or None for a run or compare folder)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise TellkitError(f"{folder}: no such folder; give the output.dir of a tellkit run, compare or sweep")
    if plan_record_kind(folder) is None and not (folder / "run.json").exists():
        raise TellkitError(f"{folder} is not a tellkit run, compare or sweep folder (no run.json or plan.json "
                           "written by tellkit), so it has no report to rewrite; give the output.dir of one")
    if (folder / "plan.json").exists() and not (folder / "comparison.json").exists():  # a sweep (or unfinished compare)
        plan = load_plan(folder)
        if plan.kind != "sweep":
            raise TellkitError(f"{folder}: this compare has not finished; rerun `tellkit compare CONFIG` to finish it")
        return folder / "report.md", folder / "report.html", summarise(plan)
    if (folder / "comparison.json").exists():  # a compare folder: re-render from its results
        result = json.loads((folder / "comparison.json").read_text(encoding="utf-8"))
        cfg = validate(result["config"]) if "config" in result else \
            load_config(Path(result["cells"][0]["run_dir"]) / "config.yaml")  # written before configs were stored
        return (*write_compare_report(result, cfg, folder), None)
    return (*write_run_report(folder), None)
