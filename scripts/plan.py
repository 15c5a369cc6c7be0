"""What a run or a multirun will cost before anything runs: `python scripts/plan.py <run.py's overrides> [-m]`."""

import warnings

warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.* is deprecated")  # fvcore's import uses it

from roadmap.tools.plan import main  # noqa: E402

if __name__ == "__main__":
    main()
