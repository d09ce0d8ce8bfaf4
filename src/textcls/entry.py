"""The `textcls` console script: `serve` without the training stack, every other command through LightningCLI.

`textcls.cli` imports Lightning and torch (seconds, and gigabytes for a CUDA build); a server of an exported ONNX
directory needs neither, so `serve` is dispatched before that import.
"""

from __future__ import annotations

import sys


def main(args: list[str] | None = None) -> None:
    """Entry point of `textcls` and `python -m textcls`; `args=None` reads the command line."""
    argv = list(sys.argv[1:] if args is None else args)
    if argv[:1] == ["serve"]:
        from textcls.serve.main import main as serve_main

        serve_main(argv[1:])
        return
    from textcls.cli import main as cli_main

    cli_main(args)
