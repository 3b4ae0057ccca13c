"""The ``iqa`` command: one click group whose sub-commands live in their own modules.

Sub-commands are imported only when run (or when help lists them), and they import the
library inside their bodies, so ``iqa --help`` does not pay for numba, scipy or pydicom.
"""
from __future__ import annotations

import importlib

import click

from iqa._version import __version__

#: command name -> "module:attribute"; each module is a thin click wrapper over the library.
COMMANDS = {
    "analyze": "iqa.cli.analyze:analyze",
    "batch": "iqa.cli.batch:batch",
    "trend": "iqa.cli.trend:trend",
    "report": "iqa.cli.report:report",
    "event": "iqa.cli.trend:event",
    "listen": "iqa.cli.listen:listen",
    "pull": "iqa.cli.pull:pull",
    "fixtures": "iqa.cli.fixtures:fixtures",
    "demo": "iqa.cli.demo:demo",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name in COMMANDS if self._load(name) is not None]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return self._load(cmd_name)

    @staticmethod
    def _load(name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            return None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="iqa")
def cli() -> None:
    """CT and MR image-quality QA: phantom analysis, trend store and drift alarms.

    \b
    Start with:
        iqa demo                         # synthetic archive -> batch -> trend -> report
        iqa fixtures acr-ct-464 out/     # a phantom series with known ground truth
        iqa analyze out/ --format table  # measure it and judge it against ACR limits
    """


def main() -> None:
    cli(prog_name="iqa")


if __name__ == "__main__":  # pragma: no cover
    main()
