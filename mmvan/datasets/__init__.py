# Copyright (c) mmvan contributors. All rights reserved.
from .demo_data import (CLASSIFICATION_CLASSES, DETECTION_CLASSES,
                        SEGMENTATION_CLASSES, make_classification_demo,
                        make_detection_demo, make_segmentation_demo)
from .loading import LoadImageFromFile

__all__ = [
    'CLASSIFICATION_CLASSES', 'DETECTION_CLASSES', 'SEGMENTATION_CLASSES',
    'make_classification_demo', 'make_detection_demo',
    'make_segmentation_demo', 'LoadImageFromFile'
]
