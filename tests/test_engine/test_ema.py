# Copyright (c) mmvan contributors. All rights reserved.
"""Which weights of a checkpoint with an EMA are evaluated or exported."""
import torch
from mmengine.logging import MMLogger

from mmvan.engine.hooks import CheckpointWeightsHook
from mmvan.engine.hooks.ema_hook import checkpoint_weights


def _mmengine_checkpoint():
    # As mmengine's EMAHook saves it: the EMA in state_dict, the weights as
    # trained under module. in ema_state_dict, with the average's steps.
    return dict(
        state_dict={
            'backbone.w': torch.full((2, ), 0.5),
            'head.b': torch.ones(1)
        },
        ema_state_dict={
            'module.backbone.w': torch.full((2, ), 2.0),
            'module.head.b': torch.zeros(1),
            'steps': torch.tensor(7)
        })


def test_checkpoint_weights_of_each_format():
    ckpt = _mmengine_checkpoint()
    sd, which = checkpoint_weights(ckpt, 'ema')
    assert which == 'the EMA weights' and sd is ckpt['state_dict']
    sd, which = checkpoint_weights(ckpt, 'raw')
    assert which == 'the weights as trained' and set(sd) == {
        'backbone.w', 'head.b'
    }
    assert torch.equal(sd['backbone.w'], torch.full((2, ), 2.0))
    # timm: state_dict as trained, state_dict_ema the average.
    timm = dict(
        state_dict={'w': torch.zeros(1)}, state_dict_ema={'w': torch.ones(1)})
    assert torch.equal(checkpoint_weights(timm, 'ema')[0]['w'], torch.ones(1))
    assert checkpoint_weights(timm, 'raw')[1] == 'the weights as trained'
    assert checkpoint_weights(dict(state_dict={'w': torch.zeros(1)}),
                              'ema') == (None, None)


class _Runner:
    logger = MMLogger.get_instance('mmvan_test_ema')


def test_raw_weights_replace_the_loaded_dict_in_place():
    ckpt = _mmengine_checkpoint()
    loaded = ckpt['state_dict']  # what the loader goes on to load
    CheckpointWeightsHook('raw').after_load_checkpoint(_Runner(), ckpt)
    assert ckpt['state_dict'] is loaded
    assert torch.equal(loaded['backbone.w'], torch.full((2, ), 2.0))
    assert torch.equal(loaded['head.b'], torch.zeros(1))
    ckpt = _mmengine_checkpoint()
    CheckpointWeightsHook('ema').after_load_checkpoint(_Runner(), ckpt)
    assert torch.equal(ckpt['state_dict']['backbone.w'], torch.full((2, ),
                                                                    0.5))
