"""`make gpu-roadmap`: the proxy roadmap on one GPU in one window (see roadmap/gpu_roadmap.py); --quick on the CPU."""

from roadmap.gpu_roadmap import main

if __name__ == "__main__":
    raise SystemExit(main())
