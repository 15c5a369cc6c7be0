"""Tabulate and draw the proxy calibration study: `python scripts/calibrate.py [--runs multirun/proxy_calibration]`."""

from roadmap.calibration import main

if __name__ == "__main__":
    main()
