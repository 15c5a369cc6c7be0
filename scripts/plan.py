"""What a run or a multirun will cost before anything runs: `python scripts/plan.py <run.py's overrides> [-m]`."""

import sys
import warnings

warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.* is deprecated")  # fvcore's import uses it

from roadmap.config.ablation import expand_reverts  # noqa: E402
from roadmap.errors import ConfigError  # noqa: E402
from roadmap.tools.plan import main  # noqa: E402

if __name__ == "__main__":
    try:  # `+step=<name> 'revert=[...]'` as run.py reads it: the step's other deltas
        argv = expand_reverts(sys.argv[1:])
    except ConfigError as error:
        sys.exit(f"error: {error}")
    main(argv)
