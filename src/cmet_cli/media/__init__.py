"""Media I/O through ffmpeg, in the order the data flows.

- ``probing``: what a file holds (``probe`` -> ``VideoInfo``), checks, tags, frame counts, timestamps, damage
  and HDR metadata
- ``decode``: whole RGB frames and mono audio through the ffmpeg binary
- ``planes``: each frame as the video's own planes with its timestamp (PyAV), for the edit, the tracking
  pass and previews; ``scaled_rgb``: a small RGB view of one (detection, thumbnails)
- ``encode``: the edit pass's output, planes encoded in-process (``FrameWriter``)
- ``mux``: what the output keeps from the input (audio, subtitles, tags) and ``verify_output``

Every ffmpeg/ffprobe command is built with ffmpeg-python (graphs compiled to argument lists, or
``ffmpeg.probe``) and run without a shell; file names go in as absolute paths so that a name starting
with ``-`` can never be read as an option. PyAV is imported inside the functions that use it, so that
importing this package (``cmet --help``) stays fast.

Callers write ``media.X``; the names below are the package's interface.
"""
from ..errors import MediaError
from .decode import decode_audio, read_frames, read_frames_at
from .encode import CODECS, FORMAT_BY_SUFFIX, PRESETS, FrameWriter, output_format, stop_writers
from .mux import audio_plan, has_packets, verify_output
from .planes import DecodeHealth, Frame, Layout, decoded_count, planes_at, read_planes, scaled_rgb, scaled_size
from .probing import (AudioStream, VideoInfo, container_tags, count_frames, damage, ffmpeg_binary, ffprobe_binary,
                      frame_times, is_video, looks_like_video, probe)

__all__ = ["MediaError", "decode_audio", "read_frames", "read_frames_at", "CODECS", "FORMAT_BY_SUFFIX", "PRESETS",
           "FrameWriter", "output_format", "stop_writers", "audio_plan", "has_packets", "verify_output",
           "DecodeHealth", "Frame", "Layout", "decoded_count", "planes_at", "read_planes", "scaled_rgb", "scaled_size",
           "AudioStream", "VideoInfo", "container_tags", "count_frames", "damage", "ffmpeg_binary", "ffprobe_binary",
           "frame_times", "is_video", "looks_like_video", "probe"]
