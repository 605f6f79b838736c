"""cmet: change the emotion of a talking face in a video, driven by emotional speech (C-MET).

The public API is importable without torch: heavy modules load when first used.

    from cmet_cli import edit_video
    edit_video("in.mp4", "out.mp4", preset="sarcastic")
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "edit_video"]


def __getattr__(name: str):
    if name == "edit_video":
        from .pipeline import edit_video

        return edit_video
    raise AttributeError(name)
