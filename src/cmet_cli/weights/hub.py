"""Hub files (``kind = "hub"``): fetched with the hub's own client, ``huggingface_hub.hf_hub_download``.

Pinned revision, ``HF_ENDPOINT`` mirrors, ``HF_HUB_OFFLINE`` and the hub's token work as with any hub tool.
huggingface_hub is imported only here, when a hub file is downloaded (``cmet --help`` must not load it).
"""
from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

from ..errors import WeightsError
from ..stages import ProgressFn, Stage
from .lock import LockEntry, offline_advice


def _progress_bar(progress: ProgressFn | None):
    """A tqdm class for ``hf_hub_download`` that shows nothing itself and reports to ``progress``."""
    from huggingface_hub.utils import tqdm as hub_tqdm

    class Forward(hub_tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)
            self.done = kwargs.get("initial") or 0

        def update(self, n: float | None = 1) -> bool | None:
            self.done += n or 0
            if progress:
                progress(Stage.DOWNLOAD, int(self.done), int(self.total or 0))
            return None

    return Forward


def hub_download(entry: LockEntry, staging: Path, progress: ProgressFn | None = None) -> tuple[Path, str]:
    """Fetch a hub entry with ``hf_hub_download`` into ``staging``: (the downloaded file, its source URL).

    ``HF_ENDPOINT`` (a mirror), ``HF_HUB_OFFLINE`` and the hub's token apply as usual. ``staging`` is the
    client's ``local_dir`` (``$CMET_HOME/.hub/<name>``), never the cache folder itself: the file is verified and
    copied to its final name by the caller. Resuming is the client's affair: what it keeps in ``staging`` after
    a failure stays there (huggingface_hub 2.4 retries a dropped connection within one call, resuming, but
    removes its partial file when the call fails).
    """
    import huggingface_hub
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    from .. import __version__

    endpoint = os.environ.get("HF_ENDPOINT") or None  # read now, not when huggingface_hub was imported
    revision = entry.revision or None
    source = huggingface_hub.hf_hub_url(entry.repo, entry.path, revision=revision, endpoint=endpoint)
    host = urllib.parse.urlparse(source).hostname
    unreachable = f"cannot reach {host} for {entry.name} ({{}}); {offline_advice(entry)}"
    try:  # one HEAD without retries first: hf_hub_download retries an unreachable hub for ~25 s
        huggingface_hub.get_hf_file_metadata(source)
    except HfHubHTTPError as exc:
        raise WeightsError(_hub_http_error(entry, source, exc)) from None
    except OfflineModeIsEnabled:
        raise WeightsError(unreachable.format("HF_HUB_OFFLINE is set")) from None
    except Exception as exc:  # the hub client's transport errors: refused, DNS, timeout, TLS
        raise WeightsError(unreachable.format(exc)) from None
    try:
        path = huggingface_hub.hf_hub_download(
            entry.repo, entry.path, revision=revision, local_dir=staging, endpoint=endpoint,
            library_name="cmet-cli", library_version=__version__, tqdm_class=_progress_bar(progress))
    except HfHubHTTPError as exc:
        raise WeightsError(_hub_http_error(entry, source, exc)) from None
    except LocalEntryNotFoundError as exc:
        raise WeightsError(unreachable.format(exc.__cause__ or exc)) from None
    except Exception as exc:  # connection lost mid-file, size mismatch, disk full
        raise WeightsError(f"download of {source} failed ({exc}); run the command again, "
                           f"or {offline_advice(entry)}") from None
    return Path(path), source


def _hub_http_error(entry: LockEntry, source: str, exc) -> str:
    status = exc.response.status_code if getattr(exc, "response", None) is not None else "?"
    what = "no such file, revision or repository" if status == 404 else "access denied" if status in (401, 403) else ""
    return f"download of {source} failed: HTTP {status}" + (f" ({what})" if what else "") + f"; {offline_advice(entry)}"
