"""Messages every textcls run would print although nothing is wrong, silenced here with the reason each is harmless,
so that a warning that does appear is worth reading. Noise with a cause in textcls is fixed there instead (the
checkpoint callback's state, the metrics' logging, the W&B logger's settings)."""

from __future__ import annotations

import logging
import re
import warnings
from typing import Any

from pytorch_lightning.callbacks import RichModelSummary
from pytorch_lightning.utilities.model_summary.model_summary import get_formatted_model_size, get_human_readable_count

# (message pattern, category, why it is harmless)
WARNING_FILTERS: tuple[tuple[str, type[Warning], str], ...] = (
    (
        r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        FutureWarning,
        "torch 2.13 deprecates a pytree API that Lightning 2.6 calls once per run; nothing a user can change",
    ),
)

# Lightning's advertisements for its cloud services (litlogger, litmodels), logged once per Trainer: not about the run.
LOG_PREFIXES = ("💡 Tip:",)
_LIGHTNING_INFO_LOGGER = "pytorch_lightning.utilities.rank_zero"  # where rank_zero_info writes


class _DropPrefixes(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(LOG_PREFIXES)


_log_filter = _DropPrefixes()


def install() -> None:
    """Install the filters above in this process (the CLI calls it first; calling it again adds nothing)."""
    for pattern, category, _why in WARNING_FILTERS:
        warnings.filterwarnings("ignore", message=pattern, category=category)
    logger = logging.getLogger(_LIGHTNING_INFO_LOGGER)
    if _log_filter not in logger.filters:
        logger.addFilter(_log_filter)


def ignore_fresh_log_dir_warning(directory: str) -> None:
    """Lightning's CSV logger says a directory "exists and is not empty ... will be deleted" when W&B, which Lightning
    starts first on purpose, has just made its folder there. Called by the W&B logger for a directory that was empty
    before W&B wrote into it, so nothing of an earlier run is there to delete; for any other directory it still warns.
    """
    pattern = rf"Experiment logs directory {re.escape(directory.rstrip('/'))}/? exists and is not empty"
    warnings.filterwarnings("ignore", message=pattern)


class QuietModelSummary(RichModelSummary):
    """Lightning's rich model summary, without the FLOPs column and total when no FLOPs were counted.

    Lightning counts FLOPs only by running the module's `example_input_array`; textcls's has none (the input length is
    the data's), so every row and the total would read 0, which looks like a model that computes nothing.
    """

    @staticmethod
    def summarize(
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict[str, int],
        total_flops: int,
        **summarize_kwargs: Any,
    ) -> None:
        if total_flops:
            RichModelSummary.summarize(
                summary_data,
                total_parameters,
                trainable_parameters,
                model_size,
                total_training_modes,
                total_flops,
                **summarize_kwargs,
            )
            return
        from rich import get_console
        from rich.table import Table

        columns = [(name, values) for name, values in summary_data if name != "FLOPs"]
        table = Table(header_style=summarize_kwargs.get("header_style", "bold magenta"))
        for name, _values in columns:
            left = name in ("Name", "Type", "Mode")
            table.add_column(name, justify="left" if left else "right", style="dim" if name == " " else None)
        for row in zip(*(values for _name, values in columns), strict=True):
            table.add_row(*row)
        grid = Table.grid(expand=True)
        grid.add_column()
        for label, value in (
            ("Trainable params", get_human_readable_count(int(trainable_parameters))),
            ("Non-trainable params", get_human_readable_count(int(total_parameters - trainable_parameters))),
            ("Total params", get_human_readable_count(int(total_parameters))),
            ("Total estimated model params size (MB)", get_formatted_model_size(model_size)),
            ("Modules in train mode", total_training_modes["train"]),
            ("Modules in eval mode", total_training_modes["eval"]),
        ):
            grid.add_row(f"[bold]{label}[/]: {value}")
        console = get_console()
        console.print(table)
        console.print(grid)


def quiet_trainer(trainer: Any) -> None:
    """Swap the rich model summary the Trainer made for itself for QuietModelSummary, with the same settings."""
    callbacks = trainer.callbacks
    for i, callback in enumerate(callbacks):
        if type(callback) is RichModelSummary:
            depth = getattr(callback, "_max_depth", 1)
            callbacks[i] = QuietModelSummary(depth, **getattr(callback, "_summarize_kwargs", {}))
