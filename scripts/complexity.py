"""Print and write experiments/complexity/<regime>.{csv,md}: `make flops`."""

from roadmap.studies.complexity import main

if __name__ == "__main__":
    main()
