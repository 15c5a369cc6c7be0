"""The ladder study's table and figure from its records (roadmap/studies/ladder.py):
`python scripts/ladder.py --experiment experiments/ladder [--runs multirun/ladder] [--one-pass RECORDS ...]`."""

from roadmap.studies.ladder import main

if __name__ == "__main__":
    main()
