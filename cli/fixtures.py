"""``iqa fixtures NAME OUTDIR [options]``: write a synthetic phantom with known ground truth.

One sub-command per generator; its options are built from the generator's keyword
parameters, so every parameter of a fixture can be set from the command line.
"""
from __future__ import annotations

import inspect
import json
from pathlib import Path

import click

from iqa.fixtures import FIXTURES, generator


def _option_for(p: inspect.Parameter) -> click.Option:
    default = p.default
    flag = "--" + p.name.replace("_", "-")
    if isinstance(default, bool):
        return click.Option([flag + "/--no-" + p.name.replace("_", "-")], default=default, show_default=True)
    if isinstance(default, (tuple, list)):
        kind = type(default[0]) if default else float
        return click.Option([flag], type=kind, multiple=False, nargs=len(default), default=default,
                            show_default=True)
    kind = type(default) if default is not None and default is not inspect.Parameter.empty else str
    return click.Option([flag], type=kind, default=None if default is inspect.Parameter.empty else default,
                        show_default=True)


class FixtureGroup(click.Group):
    def list_commands(self, ctx):
        return list(FIXTURES)

    def get_command(self, ctx, name):
        if name not in FIXTURES:
            return None
        try:
            gen = generator(name)
        except (ImportError, AttributeError) as exc:
            reason = str(exc)       # ``exc`` is unbound once the except block ends

            @click.command(name=name, help=f"(unavailable: {reason})")
            def unavailable():
                raise click.ClickException(f"fixture {name} is not available in this build: {reason}")
            return unavailable
        params = [p for p in inspect.signature(gen).parameters.values()
                  if p.kind is inspect.Parameter.KEYWORD_ONLY]
        doc = (inspect.getdoc(gen) or "").split("\n\n")[0]

        def run(outdir: Path, **kwargs):
            from iqa.fixtures import generate
            try:
                truth = generate(name, outdir, **kwargs)
            except (ValueError, TypeError) as exc:   # a parameter the generator refuses
                raise click.UsageError(f"{name}: {exc}") from None
            n = sum(1 for _ in Path(outdir).rglob("*") if _.is_file() and _.name != "truth.json")
            click.echo(f"wrote {name} to {outdir} ({n} files); ground truth in {Path(outdir) / 'truth.json'}")
            if truth.get("metrics"):
                click.echo(json.dumps(truth["metrics"], indent=None)[:400])

        cmd = click.Command(name, callback=run, help=doc, params=[
            click.Argument(["outdir"], type=click.Path(file_okay=False, path_type=Path))] +
            [_option_for(p) for p in params])
        return cmd


@click.group(cls=FixtureGroup)
def fixtures() -> None:
    """Write a synthetic phantom series with exact ground truth (truth.json beside the DICOM).

    \b
        iqa fixtures ct-water out/water --noise-hu 8 --psf-sigma-mm 0.5 --seed 3
        iqa fixtures acr-mri-large out/acr --field-strength-t 3.0
        iqa fixtures archive out/archive --days 60 --scanners 4
    """
