"""Analyse a factorial study's records into tables and figures:
`python scripts/effects.py --experiment experiments/factorial [--runs multirun/factorial]`."""

from roadmap.studies.factorial import main

if __name__ == "__main__":
    main()
