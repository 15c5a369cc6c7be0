"""Benchmark training img/s and memory, ours against timm (`make bench`), or the ImageFolder loader:
`python scripts/bench.py [train] --help`, `python scripts/bench.py loader --help`."""

from roadmap.tools.benchmark import main

if __name__ == "__main__":
    main()
