"""Aggregate run records into per-step tables: `python scripts/aggregate.py --runs multirun/<date>`."""

from roadmap.studies.aggregate import main

if __name__ == "__main__":
    main()
