"""The main job: `python run.py +step=<name>`; Hydra composes conf/train.yaml with the overrides."""

import logging

import hydra
from omegaconf import DictConfig, OmegaConf

from roadmap.complexity import complexity
from roadmap.config import build_model

log = logging.getLogger(__name__)


@hydra.main(config_path="conf", config_name="train", version_base="1.3")
def main(cfg: DictConfig) -> None:
    model = build_model(cfg)  # first: an invalid argument fails here, before any data is read
    c = complexity(model, 224, cfg.model.in_chans)
    log.info("step %s (%s regime), deltas %s", cfg.step, cfg.regime.name, list(cfg.deltas))
    log.info("model:\n%s", OmegaConf.to_yaml(cfg.model, resolve=True))
    log.info("params %s, GFLOPs at 224: %.3f (fvcore, norms included: %.3f)", f"{c.params:,}", c.gflops,
             c.gflops_with_norms)


if __name__ == "__main__":
    main()
