# Copyright (c) mmvan contributors. All rights reserved.
from .demo_data import CLASSIFICATION_CLASSES, make_classification_demo

__all__ = ['CLASSIFICATION_CLASSES', 'make_classification_demo']
