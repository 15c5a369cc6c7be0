"""Tabulate and draw the proxy calibration study: `python scripts/calibrate.py [--runs multirun/proxy_calibration]`."""

from roadmap.studies.calibration import main

if __name__ == "__main__":
    main()
