# Copyright (c) mmvan contributors. All rights reserved.
"""The random states a stop checkpoint carries survive a safe load."""
import random

import numpy as np
import torch

from mmvan.engine.hooks.preemption_hook import (_random_states,
                                                _set_random_states)


def _draw():
    return (random.random(), float(np.random.rand()), float(torch.rand(1)),
            float(np.random.randn()))


def test_random_states_round_trip_through_a_weights_only_load(tmp_path):
    random.seed(3)
    np.random.seed(3)
    torch.manual_seed(3)
    np.random.randn()  # a cached Gaussian is part of numpy's state
    path = tmp_path / 'states.pth'
    torch.save(dict(meta=dict(random_states=[_random_states()])), path)
    expected = _draw()
    _draw()
    states = torch.load(path, weights_only=True)['meta']['random_states']
    _set_random_states(states[0])
    assert _draw() == expected
