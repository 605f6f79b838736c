"""The Gradio page of ``cmet app`` over a ``Workbench``: the only module that imports gradio.

Each event calls the workbench (which calls ``runner``/``preview``/``face_list`` as the CLI does); the edit, the
preview and Find faces share one queue slot (``concurrency_id="gpu"``, limit 1), so they wait their turn and the
page shows the queue.
"""
from __future__ import annotations

import contextvars
import shutil
from pathlib import Path
from typing import Any

import gradio as gr

from .. import atomic
from ..errors import CmetError, one_line
from ..stages import Stage
from .workbench import FoundFaces, Outcome, Request, Workbench, message

TITLE = "cmet: change the emotion of a talking face"
ABOUT = ("Everything runs on this machine: the video, the speech clip and the result never leave it. "
         "Results are written to `{output}`.")


def preset_choices(workbench: Workbench) -> list[tuple[str, str]]:
    """``cmet emotions``' list as (label, value): weak presets marked, a missing bank said."""
    from .. import presets

    try:
        rows = presets.describe(workbench.base.bank_dir, workbench.base.weights_dir)
    except CmetError:
        rows = [presets.PresetInfo(name, 0, None) for name in presets.PRESETS]
    out = []
    for row in rows:
        mark = " (not installed)" if not row.installed else " (weak)" if row.weak else ""
        out.append((row.name + mark, row.name))
    return out


def _video(upload: str | None, typed: str | None) -> str:
    return upload or (typed or "").strip()


def _request(upload, typed, preset, speech, intensity, keyframes, face) -> Request:
    chosen = str(face).strip() if face is not None else ""
    return Request(video=_video(upload, typed), preset=preset or None, speech=speech or None,
                   intensity=float(intensity), keyframes=keyframes or "", face=chosen or None)


NO_FACES_YET = [("face 1", "1"), ("all", "all")]  # before Find faces: the ids any video with a face has


def face_choices(found: FoundFaces) -> list[tuple[str, str]]:
    """The picker's choices: each id (1 marked as the default's) and ``all`` when there are several."""
    ids = found.ids
    return [(f"face {i}", str(i)) for i in ids] + ([("all", "all")] if len(ids) > 1 else [])


def faces_status(found: FoundFaces) -> str:
    n, frames = len(found.ids), found.listed.frames
    return (f"{n} face track{'s' if n != 1 else ''} in {frames} frames (ids by share of frames, then size): "
            "choose which to edit")


def _stage_progress(progress: gr.Progress):
    """A ``ProgressFn`` for the page's bar, callable from the edit's threads (gradio finds the event through
    context variables, which other threads do not inherit: each call runs in a copy of the event's context)."""
    context = contextvars.copy_context()

    def report(stage: Stage, done: int, total: int) -> None:
        context.copy().run(progress, (done, total or None), desc=str(Stage(stage)), unit="frames")

    return report


def _shown_original(workbench: Workbench, video: str) -> str | None:
    """The original for the page's player: an upload as it is; a typed path copied into the private scratch folder
    (the page serves files from there and from the output folder, never from elsewhere on this machine)."""
    path = Path(video)
    if not video or not path.is_file():
        return None
    if workbench.scratch in path.resolve().parents or workbench.output_dir in path.resolve().parents:
        return str(path)
    folder = workbench.scratch / "originals"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{abs(hash(str(path.resolve())))}{path.suffix.lower() or '.mp4'}"
    if not target.exists():
        with path.open("rb") as source, atomic.atomic_output(target) as out:
            while chunk := source.read(1 << 20):
                out.write(chunk)
    return str(target)


def build(workbench: Workbench) -> gr.Blocks:
    """The page: inputs on the left, preview and result on the right."""
    with gr.Blocks(title=TITLE, analytics_enabled=False) as page:
        gr.Markdown(f"## {TITLE}\n{ABOUT.format(output=workbench.output_dir)}")
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.Video(label="Video (upload)", sources=["upload"], elem_id="video")
                typed = gr.Textbox(label="…or a video's path on this machine", elem_id="path", max_lines=1)
                preset = gr.Dropdown(preset_choices(workbench), value=None, label="Emotion preset (cmet emotions)",
                                     elem_id="preset")
                speech = gr.Audio(label="…or a speech clip whose emotion to take (upload or record)",
                                  sources=["upload", "microphone"], type="filepath", elem_id="speech")
                intensity = gr.Slider(0, 2, value=1.0, step=0.05, label="Intensity", elem_id="intensity")
                keyframes = gr.Textbox(label="Timeline keyframes (optional; replace the emotion above): TIME EMOTION "
                                             "per line, e.g. `0 happy` and `0:04 sad`", lines=2, elem_id="keyframes")
                with gr.Row(equal_height=True):  # the face picker: `cmet faces`' ids and contact sheet
                    find_button = gr.Button("Find faces", elem_id="find-faces-button", scale=1)
                    face = gr.Dropdown(NO_FACES_YET, value="1", allow_custom_value=True, elem_id="face", scale=2,
                                       label="Face (ids as `cmet faces`; several: 1,3)")
                faces_sheet = gr.Image(label="Faces (as `cmet faces --sheet`)", type="filepath", interactive=False,
                                       elem_id="faces-sheet", height=200)
                with gr.Accordion("Face tracks (as `cmet faces --json`)", open=False):
                    faces_json = gr.JSON(elem_id="faces-json")
                with gr.Row():
                    preview_button = gr.Button("Preview", elem_id="preview-button")
                    edit_button = gr.Button("Edit", variant="primary", elem_id="edit-button")
            with gr.Column(scale=2):
                sheet = gr.Image(label="Preview: original above, edited below", type="filepath", elem_id="sheet",
                                 interactive=False)
                with gr.Row():
                    original = gr.Video(label="Original", interactive=False, elem_id="original")
                    result = gr.Video(label="Edited", interactive=False, elem_id="result")
                download = gr.DownloadButton("Download the edit", elem_id="download")
                status = gr.Textbox(label="Status", interactive=False, elem_id="status")
                row = gr.JSON(label="Result (as `cmet edit --json`)", elem_id="json")

        inputs = [upload, typed, preset, speech, intensity, keyframes, face]

        def on_preview(*values: Any, progress=gr.Progress()) -> tuple:
            request = _request(*values)
            progress(None, desc="preview")
            try:
                return str(workbench.preview(request)), "preview ready: edit when the emotion looks right"
            except CmetError as exc:
                return None, f"error: {one_line(str(exc))}"

        def on_edit(*values: Any, progress=gr.Progress()) -> tuple:
            request = _request(*values)
            outcome: Outcome = workbench.edit(request, progress=_stage_progress(progress))
            try:
                shown = _shown_original(workbench, request.video)
            except (OSError, CmetError):
                shown = None
            output = str(outcome.output) if outcome.output else None
            return shown, output, output, outcome.result, message(outcome)

        def on_find_faces(upload: str | None, typed: str | None, progress=gr.Progress()) -> tuple:
            progress(None, desc="finding faces")
            try:
                found = workbench.find_faces(_video(upload, typed))
            except CmetError as exc:
                return None, gr.Dropdown(NO_FACES_YET, value="1"), None, f"error: {one_line(str(exc))}"
            return (str(found.sheet), gr.Dropdown(face_choices(found), value="1"), found.listed.as_dict(),
                    faces_status(found))

        def on_new_video() -> tuple:  # the ids found belong to the video they were found in
            return None, gr.Dropdown(NO_FACES_YET, value="1"), None

        find_button.click(on_find_faces, [upload, typed], [faces_sheet, face, faces_json, status], api_name="faces",
                          concurrency_id="gpu", concurrency_limit=1)
        for video in (upload, typed):
            video.change(on_new_video, None, [faces_sheet, face, faces_json], queue=False, api_visibility="private")
        preview_button.click(on_preview, inputs, [sheet, status], api_name="preview", concurrency_id="gpu",
                             concurrency_limit=1)
        edit_button.click(on_edit, inputs, [original, result, download, row, status], api_name="edit",
                          concurrency_id="gpu", concurrency_limit=1)
    page.queue(default_concurrency_limit=1)
    return page


def serve(workbench: Workbench, *, host: str, port: int | None, share: bool, block: bool = True) -> gr.Blocks:
    """Start the page; ``block``: until Ctrl-C (the caller removes the scratch folder afterwards)."""
    page = build(workbench)
    page.launch(server_name=host, server_port=port, share=share, inbrowser=False, quiet=True, show_error=False,
                allowed_paths=[str(workbench.output_dir)], prevent_thread_lock=True)
    if block:
        page.block_thread()
    return page


def remove_scratch(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
