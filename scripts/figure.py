"""Draw an experiment's roadmap figure and cost plots: `python scripts/figure.py --experiment experiments/<name>`."""

from roadmap.figures.roadmap import main

if __name__ == "__main__":
    main()
