"""`make test` runs the suite in one pytest-xdist worker per core. Each worker, and every process a test starts,
computes on one thread: two workers of two torch threads each on two cores would spend their time contending."""

import os

import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
