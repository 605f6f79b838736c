"""Faces in real footage: detect, track, smooth, crop to 256², and paste the rendered face back.

Data flow: keyframe detections (``detection``) -> IoU tracks -> per-frame boxes, interpolated over short gaps and
smoothed in time (``tracking``) -> square crops in the training-data convention -> (networks) -> inverse crop with
a feathered mask (``cropping``). Callers use the names re-exported here (``faces.track_faces``).
"""
from __future__ import annotations

from .detection import (CASCADE_FALLBACK, DETECTORS, CascadeDetector, Detection, FanDetector, YuNetDetector,
                        detector_kind, detector_problems, frontality, iou, make_detector)
from .cropping import (CROP, CropBox, crop, crop_planes, face_mask, match_colour, paste, paste_planes)
from .tracking import CROP_SCALE, NO_FACE, FaceTrack, TrackConfig, describe_ids, face_tracks, fixed_track, link, pick, track_faces

__all__ = [
    "CASCADE_FALLBACK", "CROP", "CROP_SCALE", "DETECTORS", "CascadeDetector", "CropBox", "Detection", "FaceTrack",
    "FanDetector", "NO_FACE", "TrackConfig", "YuNetDetector", "crop", "crop_planes", "detector_kind", "detector_problems",
    "describe_ids", "face_mask", "face_tracks", "fixed_track", "link", "pick", "frontality", "iou", "make_detector", "match_colour", "paste", "paste_planes",
    "track_faces",
]
