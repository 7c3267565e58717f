# Copyright (c) mmvan contributors. All rights reserved.
"""What a model exports, and the module that runs the exported part in
its place.

A classifier is exported whole (backbone, neck and the head's linear
layer: normalised image in, logits out); a detector or segmentor exports
its backbone, and its neck and head stay in PyTorch. The exported part is
replaced inside the model by a :class:`BackendModule`, so the model keeps
its class, data preprocessor, ``test_step`` and data samples:
:func:`mmvan.apis.inference_model`, ``tools/test.py`` and mmengine's
Runner use it as before.
"""
import threading

import torch.nn as nn

# Calls from several threads add to the agreement counts one at a time
# (a module-level lock: a lock attribute would stop a model from being
# copied).
_AGREEMENT_LOCK = threading.Lock()


class BackendModule(nn.Module):
    """Runs an exported part of a model; stands where that part was.

    Returns a tuple of tensors (the backbone's outputs, or ``(logits, )`` for
    a whole classifier) on the input's device. ``deploy`` is True: it runs
    the folded model. With a ``shadow`` (the same part in fp32) it also
    counts how often the two agree (:attr:`agreement`).

    Args:
        predictor (callable): Runs the part: tensor in, list of tensors
            out (:mod:`mmvan.backends.predictors`).
        backend (str): The backend's name.
        precision (str): ``'fp32'``, ``'bf16'`` or ``'int8'``.
        part (str): ``'model'`` or ``'backbone'``.
        report (dict, optional): The check the part passed.
    """
    deploy = True

    def __init__(self, predictor, backend, precision, part, report=None):
        super().__init__()
        self.predictor = predictor
        self.backend, self.precision, self.part = backend, precision, part
        self.report = report or {}
        self.shadow = None
        self.agreement = dict(images=0, top1_same=0, max_rel=0.0)

    def extra_repr(self):
        return (f'backend={self.backend}, precision={self.precision}, '
                f'part={self.part}')

    def forward(self, x, *args, **kwargs):
        outs = self.predictor(x)
        if self.shadow is not None:
            self._count(outs, self.shadow(x))
        return tuple(o.to(x.device) for o in outs)

    def _count(self, outs, ref):
        with _AGREEMENT_LOCK:
            self._add(outs, ref)

    def _add(self, outs, ref):
        stats = self.agreement
        stats['images'] += int(outs[0].shape[0])
        if self.part == 'model':
            same = outs[0].argmax(1) == ref[0].argmax(1)
            stats['top1_same'] += int(same.sum())
        for o, r in zip(outs, ref):
            rel = float(
                (o.float() - r).abs().max() / r.abs().max().clamp_min(1e-12))
            stats['max_rel'] = max(stats['max_rel'], rel)


class ClassifierGraph(nn.Module):
    """Normalised image -> logits (backbone, neck, head)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return (self.model(x, mode='tensor'), )


class BackboneGraph(nn.Module):
    """Image -> the backbone's outputs, as a tuple."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone

    def forward(self, x):
        return tuple(self.backbone(x))


class ModuleGraph(nn.Module):
    """Any module's ``forward(x)`` with its outputs as a tuple."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x):
        out = self.module(x)
        return tuple(out) if isinstance(out, (tuple, list)) else (out, )


def exported_part(model):
    """``'model'`` for a classifier whose head is a linear layer on the
    last feature (exported whole), ``'backbone'`` otherwise."""
    import mmpretrain.models as mmpretrain_models  # optional: classifiers
    head = getattr(model, 'head', None)
    last_feature = (mmpretrain_models.ClsHead.pre_logits,
                    mmpretrain_models.LinearClsHead.pre_logits)
    task = getattr(model, 'task', None)
    if task is None and isinstance(model, mmpretrain_models.ImageClassifier):
        task = 'cls'
    if (task == 'cls' and head is not None
            and isinstance(getattr(head, 'fc', None), nn.Linear)
            and type(head).pre_logits in last_feature):
        return 'model'
    return 'backbone'


def part_graph(model, part):
    """The graph of ``part`` of ``model``: outputs as a tuple."""
    if part == 'model':
        return ClassifierGraph(model)
    return BackboneGraph(model.backbone)


def install(model, part, module):
    """Put ``module`` (a :class:`BackendModule`) in place of ``part``."""
    model.backbone = module
    if part == 'model':
        # The graph ends with the head's linear layer: the neck ran inside
        # it and the head's softmax / data samples stay in PyTorch.
        model.neck = None
        model.head.fc = nn.Identity()


def backend_module(model):
    """The :class:`BackendModule` inside ``model``, or None."""
    for m in model.modules():
        if isinstance(m, BackendModule):
            return m
    return None
