# Copyright (c) mmvan contributors. All rights reserved.
from mmengine.utils import get_git_hash
from mmengine.utils.dl_utils import collect_env as collect_base_env

import mmvan


def collect_env():
    """The environment (Python, torch, compilers, OpenMMLab packages)."""
    env_info = collect_base_env()
    env_info['mmvan'] = mmvan.__version__ + '+' + get_git_hash()[:7]
    for name in ('mmcv', 'mmpretrain', 'mmdet', 'mmseg'):
        try:
            module = __import__(name)
            env_info[name] = module.__version__
        except ImportError:
            env_info[name] = 'not installed'
    return env_info


if __name__ == '__main__':
    for key, value in collect_env().items():
        print(f'{key}: {value}')
