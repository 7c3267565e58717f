# Copyright (c) mmvan contributors. All rights reserved.
"""What ``tools/demo.py`` (``make demo``) runs: a VAN model trained on a
small generated data set on the CPU, shown to learn (:func:`run_demo`).

Makes the data (deterministic), evaluates the untrained model, trains with
tools/train.py, evaluates the best checkpoint with tools/test.py and prints
both figures and where the outputs are.
"""
import glob
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import time

import torch
from mmengine.config import Config
from mmengine.registry import MODELS, DefaultScope, init_default_scope

import mmvan.datasets as demo_data
import mmvan.datasets.demo_data_paper as demo_data_paper
from mmvan.cli.train import set_verbose

__all__ = [
    'TASKS', 'ITER_BASED', 'data_options', 'eval_options', 'save_untrained',
    'evaluate', 'run_demo'
]

TASKS = {
    'cls':
    dict(
        config='configs/van/van-b0_demo.py',
        data_root='data/demo_cls',
        maker='make_classification_demo',
        metric='accuracy/top1',
        scope='mmpretrain',
        target=90.0,
        scale=1.0),
    'det':
    dict(
        config='configs/retinanet/retinanet_van-b0_fpn_demo.py',
        data_root='data/demo_det',
        maker='make_detection_demo',
        metric='coco/bbox_mAP',
        scope='mmdet',
        target=None,
        scale=100.0),
    'seg':
    dict(
        config='configs/sem_fpn/fpn_van-b0_demo.py',
        data_root='data/demo_seg',
        maker='make_segmentation_demo',
        metric='mIoU',
        scope='mmseg',
        target=None,
        scale=1.0),
    'pano':
    dict(
        config='configs/mask2former/mask2former_van-tiny_demo.py',
        data_root='data/demo_pano',
        maker='make_panoptic_demo',
        metric='coco_panoptic/PQ',
        scope='mmdet',
        target=None,
        scale=1.0),
    'pose':
    dict(
        config='configs/simplebaseline/td-hm_van-tiny_demo.py',
        data_root='data/demo_pose',
        maker='make_keypoint_demo',
        metric='coco/AP',
        scope='mmpose',
        target=None,
        scale=100.0),
    'cub':
    dict(
        config='configs/van/van-b0_demo-cub.py',
        data_root='data/demo_cub',
        maker='make_cub_demo',
        metric='accuracy/top1',
        scope='mmpretrain',
        target=None,
        scale=1.0),
}
# Iteration-based demos: --epochs sets max_iters.
ITER_BASED = ('seg', 'pano')


def run(cmd, title, root):
    """Run ``cmd`` in ``root`` after printing its title and command line;
    a failure raises ``subprocess.CalledProcessError``."""
    shown = ['python' if cmd[0] == sys.executable else cmd[0], *cmd[1:]]
    print(f'\n== {title}\n+ {" ".join(shown)}', flush=True)
    subprocess.run(cmd, check=True, cwd=root)


def data_options(task, data_root):
    """``--cfg-options`` pointing a demo config's loaders and evaluators at
    ``data_root``."""
    opts = []
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        opts.append(f'{loader}.dataset.data_root={data_root}/')
    ann = dict(
        det='instances_val.json',
        pano='panoptic_val.json',
        pose='person_keypoints_val.json').get(task)
    if ann:
        for ev in ('val_evaluator', 'test_evaluator'):
            opts.append(f'{ev}.ann_file={data_root}/annotations/{ann}')
            if task == 'pano':
                opts.append(f'{ev}.seg_prefix={data_root}/annotations/'
                            f'panoptic_val/')
    return opts


def eval_options(config):
    """Keep every detection when evaluating, so that the untrained model
    (whose scores are all low) is ranked by COCO AP like the trained one;
    AP is a ranking metric, so low-scoring boxes only add to the tail."""
    if any(k in osp.basename(config) for k in ('retinanet', 'atss', 'gfl')):
        return ['model.test_cfg.score_thr=0.0']
    if 'rcnn' in config:
        return ['model.test_cfg.rcnn.score_thr=0.0']
    return []


def save_untrained(config, scope, path):
    """The model as initialised before training, as a checkpoint."""
    init_default_scope(scope)
    cfg = Config.fromfile(config)
    torch.manual_seed(0)
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(cfg.model)
    model.init_weights()
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, path)


def evaluate(py, config, ckpt, work_dir, options, metric, title, root):
    """``metric`` of ``ckpt`` by ``tools/test.py`` (run in ``root``)."""
    out = osp.join(work_dir, osp.basename(ckpt) + '.metrics.json')
    run([
        py, 'tools/test.py', config, ckpt, '--work-dir',
        osp.join(work_dir, 'test'), '--out', out, '--out-item', 'metrics',
        '--cfg-options', *options
    ], title, root)
    with open(out) as f:
        # mmdet's CocoMetric returns nothing when there is no detection.
        return json.load(f).get(metric, 0.0)


def run_demo(root,
             task='cls',
             config=None,
             work_dir=None,
             epochs=None,
             verbose=False):
    """``tools/demo.py``: make the demo data of ``task`` under ``root``,
    evaluate the untrained model, train it with ``tools/train.py``,
    evaluate the best checkpoint with ``tools/test.py`` and print both
    figures and where the outputs are; every path is relative to ``root``
    (the repository). Exits with an ``error:`` message when the trained
    model misses the task's target or is no better than the untrained
    one."""
    set_verbose(verbose)
    spec = TASKS[task]
    config = config or spec['config']
    name = osp.splitext(osp.basename(config))[0]
    work_dir = work_dir or osp.join('work_dirs', name)
    abs_work_dir = osp.join(root, work_dir)
    start = time.time()

    maker = getattr(demo_data, spec['maker'], None) or getattr(
        demo_data_paper, spec['maker'])
    maker(osp.join(root, spec['data_root']))
    print(f'Demo data: {spec["data_root"]}')
    if osp.isdir(abs_work_dir):
        shutil.rmtree(abs_work_dir)
    options = data_options(task, spec['data_root'])
    py = sys.executable

    # Before training.
    # In a folder of its own: training refuses a work dir that holds a
    # checkpoint at its top level (it would be an earlier run's).
    untrained = osp.join(abs_work_dir, 'untrained', 'untrained.pth')
    os.makedirs(osp.dirname(untrained), exist_ok=True)
    save_untrained(osp.join(root, config), spec['scope'], untrained)
    test_options = options + eval_options(config)
    before = evaluate(py, config, untrained, work_dir, test_options,
                      spec['metric'], 'the untrained model', root)

    train_options = list(options)
    if epochs:
        key = 'max_iters' if task in ITER_BASED else 'max_epochs'
        train_options.append(f'train_cfg.{key}={epochs}')
    train_start = time.time()
    run([
        py, 'tools/train.py', config, '--work-dir', work_dir, '--cfg-options',
        *train_options
    ], 'training', root)
    train_time = time.time() - train_start
    best = sorted(glob.glob(osp.join(abs_work_dir, 'best_*.pth')))
    if not best:
        sys.exit(f'error: no best checkpoint in {work_dir}')
    after = evaluate(py, config, best[-1], work_dir, test_options,
                     spec['metric'], 'the best checkpoint', root)

    runs = sorted(
        d for d in glob.glob(osp.join(abs_work_dir, '2*')) if osp.isdir(d))
    run_dir = runs[-1] if runs else abs_work_dir
    logs = glob.glob(osp.join(run_dir, '*.log'))
    scale = spec['scale']
    unit = ' %' if scale == 1.0 else ''
    print('\n' + '=' * 72)
    print(f'{name}: {spec["metric"]} on the held-out split')
    print(f'  untrained model: {before * scale:6.2f}{unit}')
    print(f'  trained model:   {after * scale:6.2f}{unit}'
          f'   ({train_time:.0f} s of training, {time.time() - start:.0f} s '
          f'in all)')
    print(f'  best checkpoint: {osp.relpath(best[-1], root)}')
    if logs:
        print(f'  training log:    {osp.relpath(logs[0], root)}')
    vis = osp.join(run_dir, 'vis_data')
    print(f'  scalars:         {osp.relpath(vis, root)} '
          f'(TensorBoard: tensorboard --logdir {osp.relpath(vis, root)})')
    if task == 'cls':
        print(f'  sample predictions: {osp.relpath(vis, root)}/vis_image/')
    print('=' * 72)
    if spec['target'] is not None and after < spec['target']:
        sys.exit(f'error: {spec["metric"]} {after:.2f} is below the '
                 f'target {spec["target"]}')
    if after <= before:
        sys.exit('error: the trained model is no better than the untrained '
                 'one')
