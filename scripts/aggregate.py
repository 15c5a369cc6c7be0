"""Aggregate run records into per-step tables: `python scripts/aggregate.py --runs multirun/<date>`."""

from roadmap.results.cli import main

if __name__ == "__main__":
    main()
