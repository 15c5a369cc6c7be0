"""Measurement and operation tools beside the studies: speed against timm and of the data pipelines, where a job
loses time against its bare step, the GPU check and the GPU roadmap, the wandb dashboard. scripts/ runs each
module's `main`; nothing else imports them. May import every other subpackage."""

__all__: list[str] = []
