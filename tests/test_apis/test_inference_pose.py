# Copyright (c) mmvan contributors. All rights reserved.
"""init_model / inference_model on an mmpose top-down config: built in
mmpose's scope, weights through mmvan's checked loader, PyTorch only, and
the same keypoints as mmpose's own ``inference_topdown``."""
import os.path as osp

import mmengine
import numpy as np
import pytest
import torch
from PIL import Image

from mmvan.apis import (inference_model, init_model, register_all_modules,
                        task_of)
from mmvan.testing import randomize_statistics
from mmvan.utils.errors import UserError
from mmvan.zoo import WeightsMismatchError

# SimpleBaseline with a narrow VAN, input 128x96 (the pose demo's model).
POSE = 'configs/simplebaseline/td-hm_van-tiny_demo.py'


@pytest.fixture(scope='module')
def pose(root, tmp_path_factory):
    """The tiny config, a checkpoint as the Runner writes one (weights and
    the dataset's metainfo) and a 128x160 image."""
    folder = tmp_path_factory.mktemp('pose')
    config = osp.join(root, POSE)
    torch.manual_seed(0)
    model = init_model(config, deploy=False)
    # Running statistics away from 0 / 1, so folding them changes weights.
    randomize_statistics(model)
    checkpoint = str(folder / 'pose.pth')
    torch.save(
        dict(
            state_dict=model.state_dict(),
            meta=dict(
                dataset_meta=model.dataset_meta,
                mmengine_version=mmengine.__version__)), checkpoint)
    rng = np.random.default_rng(0)
    img = str(folder / 'person.jpg')
    Image.fromarray(rng.integers(0, 255, (160, 128, 3),
                                 dtype=np.uint8)).save(img)
    return config, checkpoint, img, model.state_dict()


def test_task_of_mmpose_config(root):
    from mmengine.config import Config
    assert task_of(Config.fromfile(osp.join(root, POSE))) == 'pose'


def test_pose_model_loads_and_matches_mmpose(pose):
    from mmpose.apis import inference_topdown
    from mmpose.models import TopdownPoseEstimator
    config, checkpoint, img, weights = pose
    model = init_model(config, checkpoint, deploy=False)
    assert isinstance(model, TopdownPoseEstimator)
    assert model.task == 'pose' and model.backend == 'pytorch'
    assert not model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, weights[key]), key
    assert model.dataset_meta['num_keypoints'] == 17
    assert len(model.dataset_meta['flip_indices']) == 17

    # Without boxes the whole image is one person.
    sample = inference_model(model, img)
    inst = sample.pred_instances
    assert inst.keypoints.shape == (1, 17, 2)
    assert inst.keypoint_scores.shape == (1, 17)
    np.testing.assert_array_equal(inst.bboxes, [[0, 0, 128, 160]])
    ref = inference_topdown(model, img)
    assert len(ref) == 1
    np.testing.assert_array_equal(inst.keypoints,
                                  ref[0].pred_instances.keypoints)
    np.testing.assert_array_equal(inst.keypoint_scores,
                                  ref[0].pred_instances.keypoint_scores)

    # Two people; an array image as well as a path; xywh boxes.
    boxes = np.array([[0, 0, 64, 160], [64, 10, 128, 150]], dtype=np.float32)
    sample = inference_model(model, img, bboxes=boxes)
    assert sample.pred_instances.keypoints.shape == (2, 17, 2)
    ref = inference_topdown(model, img, boxes)
    np.testing.assert_array_equal(
        sample.pred_instances.keypoints,
        np.concatenate([r.pred_instances.keypoints for r in ref]))
    bgr = np.asarray(Image.open(img))[..., ::-1]
    xywh = boxes.copy()
    xywh[:, 2:] -= xywh[:, :2]
    again = inference_model(
        model, bgr, bboxes=xywh.tolist(), bbox_format='xywh')
    np.testing.assert_array_equal(again.pred_instances.keypoints,
                                  sample.pred_instances.keypoints)


def test_pose_matches_mmpose_init_model(pose):
    from mmpose.apis import inference_topdown
    from mmpose.apis import init_model as mmpose_init_model
    config, checkpoint, img, _ = pose
    ours = inference_model(init_model(config, checkpoint, deploy=False), img)
    # mmpose loads mmengine's checkpoint with torch's safe loader once
    # mmvan's extension points are on.
    register_all_modules()
    theirs = inference_topdown(
        mmpose_init_model(config, checkpoint, device='cpu'), img)[0]
    np.testing.assert_array_equal(ours.pred_instances.keypoints,
                                  theirs.pred_instances.keypoints)
    np.testing.assert_array_equal(ours.pred_instances.keypoint_scores,
                                  theirs.pred_instances.keypoint_scores)


def test_pose_deploy_is_folded_pytorch(pose):
    config, checkpoint, img, _ = pose
    raw = init_model(config, checkpoint, deploy=False)
    # backend='auto' with a checkpoint would export a classifier, detector
    # or segmentor to a runtime; a pose model stays in PyTorch, folded.
    model = init_model(config, checkpoint)
    assert model.backend == 'pytorch' and model.precision == 'fp32'
    assert model.backbone.deploy
    a = inference_model(model, img).pred_instances
    b = inference_model(raw, img).pred_instances
    np.testing.assert_allclose(a.keypoint_scores, b.keypoint_scores, atol=1e-4)
    np.testing.assert_allclose(a.keypoints, b.keypoints, atol=0.5)
    assert init_model(config, checkpoint, backend='pytorch').backbone.deploy


def test_pose_refuses_runtimes_and_bad_inputs(pose, tiny):
    from mmvan.backends import BackendUnsupportedError
    config, checkpoint, img, _ = pose
    for kwargs in (dict(backend='onnxruntime'), dict(precision='bf16')):
        with pytest.raises(BackendUnsupportedError, match='PyTorch fp32'):
            init_model(config, checkpoint, **kwargs)
    model = init_model(config, checkpoint, deploy=False)
    with pytest.raises(UserError, match='N x 4'):
        inference_model(model, img, bboxes=[[0, 0, 10]])
    with pytest.raises(UserError, match='bbox_format'):
        inference_model(model, img, bboxes=[[0, 0, 9, 9]], bbox_format='cxcy')
    # Boxes are for pose models.
    cls = init_model(tiny(), deploy=False)
    with pytest.raises(UserError, match='bboxes are for pose models'):
        inference_model(cls, img, bboxes=[[0, 0, 9, 9]])
    # A classifier's checkpoint is not a pose model's.
    cls_ckpt = osp.join(osp.dirname(checkpoint), 'cls.pth')
    torch.save({'state_dict': cls.state_dict()}, cls_ckpt)
    with pytest.raises(WeightsMismatchError):
        init_model(config, cls_ckpt, deploy=False)


def test_image_demo_draws_pose_through_the_api(pose, root, tmp_path):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        'pose_image_demo', osp.join(root, 'demo', 'image_demo.py'))
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    config, checkpoint, img, _ = pose
    out = tmp_path / 'pose.png'
    argv = [img, config, checkpoint, '--out-file', str(out), '--no-deploy']
    sample = demo.main(argv +
                       ['--bboxes', '0', '0', '64', '160', '--score-thr', '0'])
    want = inference_model(
        init_model(config, checkpoint, deploy=False),
        img,
        bboxes=[[0, 0, 64, 160]])
    np.testing.assert_array_equal(sample.pred_instances.keypoints,
                                  want.pred_instances.keypoints)
    drawn = np.asarray(Image.open(out).convert('RGB'))
    assert drawn.shape == (160, 128, 3)
    assert not np.array_equal(drawn, np.asarray(Image.open(img)))
    # The whole image is one person without --bboxes.
    assert demo.main(argv).pred_instances.keypoints.shape == (1, 17, 2)
    with pytest.raises(UserError, match='4 numbers per person'):
        demo.main(argv + ['--bboxes', '0', '0', '64'])
