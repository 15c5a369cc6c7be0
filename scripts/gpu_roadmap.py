"""`make gpu-roadmap`: the proxy roadmap on one GPU within a deadline (see roadmap/tools/gpu_roadmap.py); --quick on the
CPU."""

from roadmap.tools.gpu_roadmap import main

if __name__ == "__main__":
    raise SystemExit(main())
