"""The commands that turn a study's records into its folder (tables, figures, README sections), and a study's
summary run in wandb; scripts/ runs each module's `main`. May import figures/, training/, results/, config/, model/,
data/ and roadmap's top level."""

from roadmap.exports import hand_on

__all__, __getattr__ = hand_on(__name__, {
    "summary_run": ("JOB_TYPE", "TABLE_KEY", "figure_key", "summary_group"),
})
