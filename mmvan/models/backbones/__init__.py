# Copyright (c) mmvan contributors. All rights reserved.
from .van import VAN

__all__ = ['VAN']
