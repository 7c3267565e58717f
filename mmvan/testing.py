# Copyright (c) mmvan contributors. All rights reserved.
"""Helpers for mmvan's tests (as ``mmdet.testing``): small VAN models with
non-trivial weights, checkpoints in the other formats' key schemes, and a
loopback HTTP server to download them from."""
import contextlib
import http.server
import re
import threading
import time
from collections import OrderedDict, defaultdict

import torch
from torch.nn.modules.batchnorm import _BatchNorm

from mmvan.models import VAN

# A VAN small enough for a CPU test: one block per stage. The tests' tiny
# configs (``tests/conftest.py``) and the scripts the tests start use it.
TINY = dict(
    embed_dims=[8, 16, 24, 32], depths=[1, 1, 1, 1], mlp_ratios=[2, 2, 2, 2])


def randomize_statistics(model, seed=0):
    """Non-trivial BatchNorm statistics and affine parameters and layer
    scales (the other weights kept), so that folding, conversion and parity
    checks compare something."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, _BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
        for name, p in model.named_parameters():
            if 'layer_scale' in name:
                p.copy_(torch.rand(p.shape, generator=g) * 0.5 + 0.05)
    return model


def randomized(model, seed=0):
    """``model`` initialised (seeded) with :func:`randomize_statistics`, in
    eval mode."""
    torch.manual_seed(seed)
    model.init_weights()
    return randomize_statistics(model, seed).eval()


def official(attention='lka', arch='b0', k=None):
    model = randomized(VAN(arch=arch, attention=attention, kernel_size=k))
    sd = OrderedDict(model.state_dict())
    c = model.embed_dims[-1]
    sd['head.weight'] = torch.randn(1000, c)
    sd['head.bias'] = torch.randn(1000)
    return model, sd


# Inverse renames written from each repository's module names, so that the
# converter's tables are checked against an independent statement of them.
def to_hf(sd):
    out = OrderedDict()
    for k, v in sd.items():
        k = re.sub(
            r'^patch_embed(\d)\.proj\.',
            lambda m: f'encoder.stages.{int(m[1]) - 1}.embeddings.'
            'convolution.', k)
        k = re.sub(
            r'^patch_embed(\d)\.norm\.',
            lambda m: f'encoder.stages.{int(m[1]) - 1}.embeddings.'
            'normalization.', k)
        k = re.sub(r'^norm(\d)\.',
                   lambda m: f'encoder.stages.{int(m[1]) - 1}.normalization.',
                   k)
        k = re.sub(r'^block(\d)\.(\d+)\.',
                   lambda m: f'encoder.stages.{int(m[1]) - 1}.layers.{m[2]}.',
                   k)
        for a, b in [('.norm1.', '.pre_normomalization.'),
                     ('.norm2.', '.post_normalization.'),
                     ('.attn.proj_1.', '.attention.pre_projection.conv.'),
                     ('.attn.proj_2.', '.attention.post_projection.'),
                     ('.attn.spatial_gating_unit.conv0.',
                      '.attention.attention_layer.attention.depth_wise.'),
                     ('.attn.spatial_gating_unit.conv_spatial.',
                      '.attention.attention_layer.attention.'
                      'depth_wise_dilated.'),
                     ('.attn.spatial_gating_unit.conv1.',
                      '.attention.attention_layer.attention.point_wise.'),
                     ('.mlp.fc1.', '.mlp.in_dense.'),
                     ('.mlp.dwconv.dwconv.', '.mlp.depth_wise.'),
                     ('.mlp.fc2.', '.mlp.out_dense.')]:
            k = k.replace(a, b)
        k = re.sub(r'\.layer_scale_1$', '.attention_scaling.weight', k)
        k = re.sub(r'\.layer_scale_2$', '.mlp_scaling.weight', k)
        if k.startswith('head.'):
            out['classifier.' + k[len('head.'):]] = v
        else:
            out['van.' + k] = v
    # VanModel's unused final LayerNorm.
    out['van.layernorm.weight'] = torch.ones(sd['norm4.weight'].shape)
    out['van.layernorm.bias'] = torch.zeros(sd['norm4.weight'].shape)
    return out


def to_lska_mm(sd):
    out = OrderedDict()
    for k, v in sd.items():
        if k.startswith('head.'):
            continue
        k = re.sub(r'^block(\d)\.', r'blocks\1.', k)
        k = re.sub(r'^patch_embed(\d)\.proj\.', r'patch_embed\1.projection.',
                   k)
        for a, b in [('.conv0h.', '.DW_conv_h.'), ('.conv0v.', '.DW_conv_v.'),
                     ('.conv_spatial_h.', '.DW_D_conv_h.'),
                     ('.conv_spatial_v.', '.DW_D_conv_v.'),
                     ('.mlp.dwconv.dwconv.', '.mlp.dwconv.')]:
            k = k.replace(a, b)
        out['backbone.' + k] = v
    out['neck.lateral_convs.0.conv.weight'] = torch.randn(4, 4, 1, 1)
    out['decode_head.conv_seg.weight'] = torch.randn(150, 4, 1, 1)
    return out


def to_official_seg(sd):
    out = OrderedDict(('backbone.' + k, v) for k, v in sd.items()
                      if not k.startswith('head.'))
    out['decode_head.conv_seg.weight'] = torch.randn(150, 128, 1, 1)
    out['auxiliary_head.conv_seg.weight'] = torch.randn(150, 256, 1, 1)
    return out


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files``: ``path -> bytes``, ``path -> ('cut',
    bytes)`` (announces the whole length, sends half, closes) or ``path ->
    ('slow', bytes, seconds)`` (sends the body in 20 parts over about
    ``seconds``)."""

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.server.requests[self.path] += 1
        item = self.server.files.get(self.path)
        if item is None:
            self.send_error(404, 'Not Found')
            return
        kind = item[0] if isinstance(item, tuple) else None
        body = item[1] if kind else item
        self.send_response(200)
        self.send_header('Content-Type', 'application/octet-stream')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        try:
            if kind == 'slow':
                step = max(1, -(-len(body) // 20))
                for start in range(0, len(body), step):
                    self.wfile.write(body[start:start + step])
                    self.wfile.flush()
                    time.sleep(item[2] / 20)
            else:
                self.wfile.write(body[:len(body) // 2] if kind else body)
        except ConnectionError:  # the client went away (killed)
            self.close_connection = True
            return
        if kind == 'cut':
            self.wfile.flush()
            self.close_connection = True

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def loopback_server(files=None):
    """An HTTP server on 127.0.0.1 and a free port, in a thread.

    Yields the server: ``server.url(path)``, ``server.files`` (editable)
    and ``server.requests`` (a count per path).
    """
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Handler)
    server.daemon_threads = True
    server.files = dict(files or {})
    server.requests = defaultdict(int)
    port = server.server_address[1]
    server.url = lambda path: f'http://127.0.0.1:{port}{path}'
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
