"""Save the project's wandb dashboard, a report of one study: `make wandb-dashboard` (after `make wandb-sync`)."""

from roadmap.tools.dashboard import main

if __name__ == "__main__":
    main()
