"""Write the stand-in YuNet models of the tests: ONNX graphs with YuNet's input and twelve outputs, whose
"detections" are known by construction, so that the real ``cv2.FaceDetectorYN`` (OpenCV 4's engine and OpenCV 5's)
runs through cmet's YuNet detector without the zoo's model, which cannot be fetched where the tests run.

What the graph computes (``input``: BGR, 0-255, [1, 3, H, W], H and W padded by OpenCV to multiples of 32):
- stride 32: each 32x32 cell's mean brightness / 255 is both its class and objectness score (YuNet's score is
  their geometric mean: the brightness itself); strides 8 and 16 score 0;
- every box is centred on its cell, ``SIDE_CELLS`` cells wide and high (``bbox``: 0.5, 0.5, log 3, log 3);
- the landmarks sit at ``MARKS`` (in cell units from the cell's corner): a frontal, symmetric face.
So a white 32x32 cell aligned to the grid on a black frame is one face: a 96x96 box centred on the cell.

    pip install --target /tmp/onnxlib onnx   # only to write the files; the tests need OpenCV alone
    PYTHONPATH=/tmp/onnxlib python tools/yunet_standin.py tests/data/detectors
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

SIDE_CELLS = 3
MARKS = ((0.2, 0.3), (0.8, 0.3), (0.5, 0.55), (0.3, 0.8), (0.7, 0.8))  # right eye, left eye, nose, mouth corners
FIXED = (640, 640)  # the input size the zoo's 2023mar export declares (OpenCV 4 ignores it)
OPSET = 13


def build(dynamic: bool):
    import onnx
    from onnx import TensorProto, helper

    dims = ["height", "width"] if dynamic else list(FIXED)
    nodes, inits = [], []

    def const(name: str, values: list[float], dtype=TensorProto.FLOAT, shape: list[int] | None = None) -> str:
        inits.append(helper.make_tensor(name, dtype, shape if shape is not None else [len(values)], values))
        return name

    const("shape_a1", [1, -1, 1], TensorProto.INT64)
    nodes.append(helper.make_node("ReduceMean", ["input"], ["grey"], axes=[1], keepdims=1))
    outputs = []
    for s in (8, 16, 32):
        nodes += [helper.make_node("AveragePool", ["grey"], [f"pool_{s}"], kernel_shape=[s, s], strides=[s, s]),
                  helper.make_node("Transpose", [f"pool_{s}"], [f"cells_{s}"], perm=[0, 2, 3, 1]),
                  helper.make_node("Reshape", [f"cells_{s}", "shape_a1"], [f"mean_{s}"]),
                  helper.make_node("Mul", [f"mean_{s}", const(f"gain_{s}", [1 / 255 if s == 32 else 0.0], shape=[])],
                                   [f"score_{s}"]),
                  helper.make_node("Identity", [f"score_{s}"], [f"cls_{s}"]),
                  helper.make_node("Identity", [f"score_{s}"], [f"obj_{s}"]),
                  helper.make_node("Mul", [f"mean_{s}", const(f"zero_{s}", [0.0], shape=[])], [f"zeros_{s}"])]
        box = [0.5, 0.5, math.log(SIDE_CELLS), math.log(SIDE_CELLS)]
        marks = [v for xy in MARKS for v in xy]
        for kind, values in (("bbox", box), ("kps", marks)):
            # zeros [1, A, 1] + a row of constants [1, 1, C] -> [1, A, C]
            nodes.append(helper.make_node("Add", [f"zeros_{s}", const(f"{kind}_row_{s}", values, shape=[1, 1, len(values)])],
                                          [f"{kind}_{s}"]))
        outputs += [(f"{kind}_{s}", c) for kind, c in (("cls", 1), ("obj", 1), ("bbox", 4), ("kps", 10))]
    order = [f"{kind}_{s}" for kind in ("cls", "obj", "bbox", "kps") for s in (8, 16, 32)]
    channels = dict(outputs)
    graph = helper.make_graph(
        nodes, "yunet_standin",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, *dims])],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, "anchors", channels[name]]) for name in order],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="cmet tools/yunet_standin.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main(argv: list[str]) -> int:
    import onnx

    out = Path(argv[0] if argv else "tests/data/detectors")
    out.mkdir(parents=True, exist_ok=True)
    for dynamic, name in ((False, "yunet-standin.onnx"), (True, "yunet-standin-dynamic.onnx")):
        onnx.save(build(dynamic), out / name)
        print(out / name, (out / name).stat().st_size, "bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
