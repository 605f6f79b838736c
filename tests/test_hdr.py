"""HDR10 static metadata goes through the edit (issue 22): the mastering display's colour volume and the
content light level of a PQ video reach the output, whichever encoder writes it; dynamic metadata is named."""
from __future__ import annotations

import json
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from cmet_cli import media
from cmet_cli.media.encode import hdr10_params, hdr_notes
from cmet_cli.media.probing import HdrMetadata, content_light, mastering_display
from cmet_cli.options import EditOptions
from cmet_cli.pipeline import Editor

from .clips import synthetic
from .standin import IdentityEditor

# BT.2020 primaries, D65, a 1000 cd/m² display down to 0.0001 cd/m² (x265's units: 0.00002 and 0.0001 cd/m²)
MASTER = "G(8500,39850)B(6550,2300)R(35400,14600)WP(15635,16450)L(10000000,1)"
PQ = ("-colorspace", "bt2020nc", "-color_primaries", "bt2020", "-color_trc", "smpte2084")
# the same numbers as ffprobe prints them (fractions of 50000 and 10000), one key per side-data field
EXPECTED_MASTERING = {"red_x": "35400/50000", "red_y": "14600/50000", "green_x": "8500/50000",
                      "green_y": "39850/50000", "blue_x": "6550/50000", "blue_y": "2300/50000",
                      "white_point_x": "15635/50000", "white_point_y": "16450/50000",
                      "min_luminance": "1/10000", "max_luminance": "10000000/10000"}


def first_frame_side_data(path: Path) -> dict[str, dict]:
    """ffprobe's side data of the first frame, by type (the system ffprobe, not the package's PyAV)."""
    out = subprocess.run([media.ffprobe_binary(), "-v", "error", "-select_streams", "V:0", "-show_frames",
                          "-read_intervals", "%+#1", "-show_entries", "frame=side_data_list", "-of", "json", str(path)],
                         capture_output=True, check=True, text=True).stdout
    frames = json.loads(out)["frames"]
    return {d["side_data_type"]: d for d in frames[0].get("side_data_list", [])}


def pyav_side_data(path: Path) -> dict[str, bytes]:
    """The first frame's raw side data through PyAV's FFmpeg (it reads H.264's HDR SEI; Debian's ffprobe 5.1 does not)."""
    import av

    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        return {side.type.name: bytes(side) for side in frame.side_data}


@pytest.fixture(scope="module")
def pq_clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pq") / "pq.mkv"
    return synthetic(path, size="96x64", rate="10", seconds=0.3, audio=False, codec="libx265", pix_fmt="yuv420p10le",
                     extra=(*PQ, "-x265-params", f"log-level=error:hdr10=1:repeat-headers=1:master-display={MASTER}"
                                                 ":max-cll=1000,400"))


def test_the_pq_clip_carries_what_the_test_expects(pq_clip):
    side = first_frame_side_data(pq_clip)
    mastering = side["Mastering display metadata"]
    assert {k: mastering[k] for k in EXPECTED_MASTERING} == EXPECTED_MASTERING
    assert (side["Content light level metadata"]["max_content"], side["Content light level metadata"]["max_average"]) == (1000, 400)


@pytest.mark.parametrize("suffix", [".mkv", ".mp4"])
def test_hevc_output_keeps_mastering_display_and_light_level(pq_clip, tmp_path, suffix):
    out = tmp_path / f"out{suffix}"
    result = Editor(EditOptions(preset="neutral", box=(16, 8, 48, 48)), face_editor=IdentityEditor()).edit(pq_clip, out)
    assert result.status == "done", result.error
    side = first_frame_side_data(out)
    mastering = side["Mastering display metadata"]
    assert {k: mastering[k] for k in EXPECTED_MASTERING} == EXPECTED_MASTERING
    light = side["Content light level metadata"]
    assert (light["max_content"], light["max_average"]) == (1000, 400)
    assert not [w for w in result.warnings if "dynamic" in w]


def test_h264_output_keeps_them_too(pq_clip, tmp_path):
    out = tmp_path / "out.mkv"
    result = Editor(EditOptions(preset="neutral", box=(16, 8, 48, 48), codec="h264"),
                    face_editor=IdentityEditor()).edit(pq_clip, out)
    assert result.status == "done", result.error
    assert media.probe(out).codec == "h264"
    side = pyav_side_data(out)
    # AVMasteringDisplayMetadata: R, G, B, white (x, y), min, max luminance as (num, den) int32 pairs, then the two flags
    ints = np.frombuffer(side["MASTERING_DISPLAY_METADATA"][:88], np.int32)
    values = [Fraction(int(n), int(d)) for n, d in zip(ints[0:20:2], ints[1:20:2])]
    assert values == [Fraction(35400, 50000), Fraction(14600, 50000), Fraction(8500, 50000), Fraction(39850, 50000),
                      Fraction(6550, 50000), Fraction(2300, 50000), Fraction(15635, 50000), Fraction(16450, 50000),
                      Fraction(1, 10000), Fraction(1000)]
    assert tuple(np.frombuffer(side["CONTENT_LIGHT_LEVEL"][:8], np.uint32)) == (1000, 400)


def test_sdr_video_gets_no_hdr_parameters(tmp_path):
    src = synthetic(tmp_path / "sdr.mp4", size="64x48", rate="10", seconds=0.2, audio=False)
    hdr = media.probing.hdr_metadata(src)
    assert hdr == HdrMetadata(stream=0)
    assert hdr10_params(hdr, "libx265") == [] and hdr10_params(hdr, "libx264") == []


def test_parameters_round_their_units_and_name_each_encoders_keys():
    hdr = HdrMetadata(mastering=(Fraction(17, 25), Fraction(8, 25), Fraction(53, 200), Fraction(69, 100),
                                 Fraction(3, 20), Fraction(3, 50), Fraction(3127, 10000), Fraction(329, 1000),
                                 Fraction(1, 20), Fraction(4000)), light=(4000, 0))
    display = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(40000000,500)"
    assert hdr10_params(hdr, "libx265") == ["hdr10=1", "repeat-headers=1", f"master-display={display}", "max-cll=4000,0"]
    assert hdr10_params(hdr, "libx264") == [f"mastering-display={display}", "cll=4000,0"]


def test_incomplete_side_data_is_not_passed_on():
    flags_off = np.array([1, 2] * 10 + [0, 0], np.int32).tobytes()  # has_primaries = has_luminance = 0
    assert mastering_display(flags_off) is None
    assert mastering_display(b"\0" * 40) is None
    assert content_light(np.array([0, 0], np.uint32).tobytes()) is None
    assert content_light(np.array([600, 0], np.uint32).tobytes()) == (600, 0)


def test_dynamic_metadata_is_named_with_its_stream():
    notes = hdr_notes(HdrMetadata(light=(1000, 400), dynamic=("HDR10+", "Dolby Vision"), stream=1))
    assert notes == ["video stream 1: its HDR10+ dynamic metadata cannot be carried through a re-encode: dropped "
                     "(the static HDR10 metadata is kept)",
                     "video stream 1: its Dolby Vision dynamic metadata cannot be carried through a re-encode: dropped "
                     "(the static HDR10 metadata is kept)"]
    assert hdr_notes(HdrMetadata(light=(1000, 400))) == []
