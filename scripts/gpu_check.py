"""`make gpu-check`: the GPU path end to end on the GPU at hand (see roadmap/tools/gpu_check.py); --quick on the CPU."""

from roadmap.tools.gpu_check import main

if __name__ == "__main__":
    raise SystemExit(main())
