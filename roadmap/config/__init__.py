"""The configs: composing conf/ from Python, its schema, the free combinations of deltas, the factorial design
and a run's labels. May import model/, data/ and roadmap's top level."""

from roadmap.exports import hand_on

__all__, __getattr__ = hand_on(__name__, {
    "ablation": ("FINAL_STEP", "STEP_MARK", "check_combination", "expand_reverts", "run_name"),
    "composition": ("CONF_DIR", "PAPER_SETTING", "PRIMARY", "TRAINING_PROCESS_CORES", "build_model", "compose",
                    "scaled_widths", "step_overrides"),
    "factorial": ("ROMAN", "Design", "design_for"),
    "labels": ("STUDIES", "check_study", "labels", "setting", "study_key", "wandb_group"),
})
