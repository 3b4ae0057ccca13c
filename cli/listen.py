"""``iqa listen``: DICOM Storage SCP that analyses phantom series as they arrive."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import click


@click.command()
@click.option("--port", type=click.IntRange(1, 65535), default=11112, show_default=True)
@click.option("--ae-title", default="IQA", show_default=True, help="Our AE title.")
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to bind.")
@click.option("--store", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Trend store (SQLite file).")
@click.option("--incoming", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder where received instances are written (by sanitised UIDs).")
@click.option("--allow", "allowed", multiple=True, help="Calling AE title allowed to connect (repeat); default any.")
@click.option("--quiet-s", type=float, default=10.0, show_default=True,
              help="A series is complete after this many seconds without a new instance.")
@click.option("--criteria", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Site criteria table (TOML).")
def listen(port, ae_title, host, store, incoming, allowed, quiet_s, criteria) -> None:
    """Receive CT/MR phantom series (C-STORE, C-ECHO) and analyse each when it is complete.

    \b
        iqa listen --port 11112 --ae-title IQA --store qa.sqlite --incoming /var/lib/iqa/in
    """
    from iqa.listen import Listener, ListenerConfig

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    cfg = ListenerConfig(incoming=incoming, store=store, port=port, ae_title=ae_title, host=host,
                         allowed_callers=tuple(allowed), quiet_s=quiet_s,
                         criteria_path=str(criteria) if criteria else None)
    try:
        listener = Listener(cfg).start()
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    click.echo(f"iqa listening as {ae_title} on {host}:{listener.port}; Ctrl-C to stop", err=True)
    try:
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        listener.stop()
