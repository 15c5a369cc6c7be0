"""Run records and what is made of them, one concern per module, so that each caller imports only its own:

- `records`: writing files atomically, and reading, checking and collecting records (result.json);
- `failures`: the record of a failed job, and the Hydra callback that names a multirun's failed jobs;
- `stats`: seed statistics per roadmap step, and the comparison of an ablation's variants with a reference;
- `tables`: CSV and markdown tables;
- `provenance`: a study README's generated sections, its table and the commits, machines and dates of its records;
- `cli`: the command line that puts them together (`python scripts/aggregate.py --runs multirun/...`).
"""
