"""Each roadmap step's Δ at every rung beside the paper's, and each rung's rank correlation with the paper
(roadmap/studies/rungs.py): `python scripts/cross_rung.py --rung LABEL=FOLDER --rung LABEL=FOLDER [--out DIR]`."""

from roadmap.studies.rungs import main

if __name__ == "__main__":
    main()
