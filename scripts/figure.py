"""Draw an experiment's roadmap figure and cost plots: `python scripts/figure.py --experiment experiments/<name>`."""

from roadmap.studies.figure import main

if __name__ == "__main__":
    main()
