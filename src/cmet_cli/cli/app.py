"""``cmet app``: the same edit from a local web page (``cmet_cli.app``), for who does not live in a terminal.

gradio loads inside the command, so that ``cmet --help`` and every other command start as fast as before."""
from __future__ import annotations

import importlib.util
import os
import tempfile
from pathlib import Path
from typing import NoReturn

import click

from .common import EXIT_OK, EXIT_USAGE, CmetCommand, _fail, _handle_termination, _setup_logging
from .params import BANK_OPTION, DEVICE_OPTION, FACE_OPTIONS, WEIGHTS_DIR_OPTION, _message

LOOPBACK = ("127.0.0.1", "localhost", "::1")
INSTALL = "the app needs gradio: pip install 'cmet-cli[app]'"


def default_output_dir() -> Path:
    """``~/Videos/cmet`` where the user has a videos folder, else ``cmet/app`` in the user's cache."""
    import platformdirs

    videos = Path(platformdirs.user_videos_dir())
    return videos / "cmet" if videos.is_dir() else Path(platformdirs.user_cache_dir("cmet")) / "app"


@click.command("app", cls=CmetCommand, short_help="The same edit from a local web page (pip install 'cmet-cli[app]').")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; anything but loopback makes the page reachable from other machines.")
@click.option("--port", type=click.IntRange(1, 65535), help="Port (default: the first free one from 7860).")
@click.option("--output-dir", type=click.Path(path_type=Path, file_okay=False),
              help="Where edits are written (default: ~/Videos/cmet, else the cache's cmet/app); nothing is written elsewhere.")
@click.option("--share", is_flag=True,
              help="Also publish the page through Gradio's share servers (a public URL; off unless asked).")
@WEIGHTS_DIR_OPTION
@BANK_OPTION
@DEVICE_OPTION
@FACE_OPTIONS
def app(host: str, port: int | None, output_dir: Path | None, share: bool, weights_dir: Path | None,
        bank_dir: Path | None, device: str, detector: str, box) -> NoReturn:
    """Open a local web page to edit videos: upload a clip, pick an emotion, preview, edit, download.

    \b
      cmet app
      cmet app --port 8080 --output-dir ~/edits
    """
    import sys

    if importlib.util.find_spec("gradio") is None:
        _fail(INSTALL, EXIT_USAGE)
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # nothing leaves this machine
    from .. import atomic
    from ..errors import CmetError
    from ..options import EditOptions

    _setup_logging(0, False)
    if host not in LOOPBACK:
        click.echo(f"warning: --host {host}: the page (and the videos edited through it) can be reached from other "
                   "machines on this network", err=True)
    if share:
        click.echo("warning: --share: the page gets a public URL through Gradio's share servers", err=True)
    output_dir = (output_dir or default_output_dir()).expanduser().absolute()
    try:
        base = EditOptions(preset="neutral", weights_dir=weights_dir, bank_dir=bank_dir, device=device,
                           detector=detector, box=box).validate()
        output_dir.mkdir(parents=True, exist_ok=True)
        atomic.check_writable(output_dir)
    except CmetError as exc:
        _fail(_message(exc), EXIT_USAGE)
    except OSError as exc:
        _fail(f"{exc.filename or output_dir}: {exc.strerror or exc}")
    scratch = Path(tempfile.mkdtemp(prefix="cmet-app-"))  # 0700: uploads, recordings, previews; removed at exit
    os.environ["GRADIO_TEMP_DIR"] = str(scratch)
    from ..app.workbench import Workbench

    workbench = Workbench(base, output_dir, scratch)
    _handle_termination()
    try:
        from ..app.page import serve

        page = serve(workbench, host=host, port=port, share=share, block=False)
        click.echo(f"cmet app: {page.local_url}  (edits go to {output_dir}; Ctrl-C stops)")
        if share and page.share_url:
            click.echo(f"public URL: {page.share_url}")
        page.block_thread()
    except KeyboardInterrupt:
        pass
    except OSError as exc:  # the port is taken, the address cannot be bound
        _fail(f"cannot start the page on {host}:{port or 'a free port'}: {exc.strerror or exc}")
    finally:
        from ..app.page import remove_scratch

        remove_scratch(scratch)
    sys.exit(EXIT_OK)
