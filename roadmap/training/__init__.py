"""One training job, from its config to its record: checks, recipe, budget, Lightning module, EMA, checkpoints,
the job folder's lock, preemption, the machine's facts. May import results/, config/, model/, data/ and roadmap's
top level."""

from roadmap.exports import hand_on

__all__, __getattr__ = hand_on(__name__, {
    "budget": ("IMAGENET_TRAIN_IMAGES", "Budget", "fit_recipe", "flatten"),
    "job": ("OtherConfigRecord", "fit_to_run", "skip_or_continue", "train"),
    "lock": ("FolderHeld", "hold"),
    "module": ("compile_options", "new_iteration"),
    "recipe": ("accumulation", "build_optimizer", "ema_decay", "gradual_warmup_epochs", "scaled_lr"),
    "system": ("device_name", "proc_status_mb", "reset_peak_memory", "training_device"),
    "validation": ("CheckSweep", "sweep_jobs"),
})
