"""Measurement and operation tools beside the studies: speed against timm and of the data pipelines, the GPU check
and the GPU roadmap, the wandb dashboard. scripts/ runs each module's `main`; nothing else imports them. May import
every other subpackage."""

__all__: list[str] = []
