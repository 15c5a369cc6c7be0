"""How a subpackage hands on its public names: each from its own module, imported on first use, so that importing
one module (a training job's records) never imports its siblings' dependencies (statsmodels, wandb, matplotlib)."""

from collections.abc import Callable, Mapping, Sequence
from importlib import import_module


def hand_on(package: str, modules: Mapping[str, Sequence[str]]) -> tuple[list[str], Callable[[str], object]]:
    """`__all__` and the module `__getattr__` of `package`, which hands on `modules` (module -> its public names)."""
    home = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> object:
        if name not in home:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(f"{package}.{home[name]}"), name)

    return sorted(home), __getattr__
