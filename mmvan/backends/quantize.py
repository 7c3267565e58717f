# Copyright (c) mmvan contributors. All rights reserved.
"""int8 post-training static quantisation with ONNX Runtime.

Weights per output channel and activations are quantised to int8 (QDQ
format); the activation ranges come from running the float model on a
calibration set (min / max). The result is an explicit, reduced-precision
choice: its agreement with fp32 is what the tools report.
"""
import os.path as osp
import tempfile

from mmvan.utils.atomic import atomic_write


def quantize_int8(onnx_in, onnx_out, calibration):
    """Quantise ``onnx_in`` into ``onnx_out`` (written atomically).

    Args:
        calibration (list[Tensor]): Batches (N x 3 x H x W, float32) as
            the graph receives them.
    """
    from onnxruntime.quantization import (  # optional: ONNX Runtime backend
        CalibrationDataReader, QuantFormat, QuantType, quantize_static)
    from onnxruntime.quantization.shape_inference import \
        quant_pre_process  # optional: same

    class Reader(CalibrationDataReader):

        def __init__(self, batches):
            self.batches = iter(batches)

        def get_next(self):
            batch = next(self.batches, None)
            if batch is None:
                return None
            return {'image': batch.float().contiguous().numpy()}

    batches = [b[i:i + 1] for b in calibration for i in range(len(b))]
    with tempfile.TemporaryDirectory(
            dir=osp.dirname(osp.abspath(onnx_out)), prefix='.int8-') as tmp:
        prepared = osp.join(tmp, 'prepared.onnx')
        out = osp.join(tmp, 'int8.onnx')
        quant_pre_process(onnx_in, prepared, skip_symbolic_shape=True)
        quantize_static(
            prepared,
            out,
            Reader(batches),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8)
        with open(out, 'rb') as f:
            atomic_write(onnx_out, f.read())
    return onnx_out
