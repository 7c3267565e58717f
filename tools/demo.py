# Copyright (c) mmvan contributors. All rights reserved.
"""`make demo`: train VAN-b0 on a small texture set and evaluate it.

Makes the data under data/demo_cls (deterministic, ImageNet's layout),
trains configs/van/van-t_demo.py with tools/train.py, evaluates the best
checkpoint with tools/test.py and prints top-1 and where the outputs are.
"""
import argparse
import glob
import os.path as osp
import shutil
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

CONFIG = osp.join('configs', 'van', 'van-t_demo.py')
TARGET_TOP1 = 90.0


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        '--work-dir',
        default=osp.join('work_dirs', 'van-t_demo'),
        help='where logs and checkpoints go (emptied first)')
    parser.add_argument('--data-root', default=osp.join('data', 'demo_cls'))
    parser.add_argument(
        '--epochs', type=int, default=None, help='override the epochs')
    return parser.parse_args()


def run(cmd):
    print('+', ' '.join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def main():
    args = parse_args()
    from mmvan.datasets import make_classification_demo
    start = time.time()
    make_classification_demo(osp.join(ROOT, args.data_root))
    print(f'Demo data: {args.data_root} (5 classes, 600 train / 200 val '
          f'images)')
    work_dir = osp.join(ROOT, args.work_dir)
    if osp.isdir(work_dir):
        shutil.rmtree(work_dir)
    options = [
        f'train_dataloader.dataset.data_root={args.data_root}',
        f'val_dataloader.dataset.data_root={args.data_root}',
        f'test_dataloader.dataset.data_root={args.data_root}'
    ]
    if args.epochs:
        options.append(f'train_cfg.max_epochs={args.epochs}')
    py = sys.executable
    run([
        py, 'tools/train.py', CONFIG, '--work-dir', args.work_dir,
        '--cfg-options', *options
    ])
    train_time = time.time() - start
    best = sorted(glob.glob(osp.join(work_dir, 'best_accuracy_top1_*.pth')))
    if not best:
        sys.exit(f'error: no best checkpoint in {work_dir}')
    metrics_file = osp.join(work_dir, 'test_metrics.json')
    run([
        py, 'tools/test.py', CONFIG, best[-1], '--work-dir',
        osp.join(args.work_dir, 'test'), '--out', metrics_file, '--out-item',
        'metrics', '--cfg-options', *options
    ])
    import json
    with open(metrics_file) as f:
        top1 = json.load(f)['accuracy/top1']
    runs = sorted(
        d for d in glob.glob(osp.join(work_dir, '2*')) if osp.isdir(d))
    run_dir = runs[-1] if runs else work_dir
    logs = glob.glob(osp.join(run_dir, '*.log'))
    print('\n' + '=' * 70)
    print(f'VAN-b0 demo: top-1 on the held-out split = {top1:.2f} % '
          f'(target >= {TARGET_TOP1:.0f} %)')
    print(f'  train + test time: {time.time() - start:.0f} s '
          f'(training {train_time:.0f} s)')
    print(f'  best checkpoint:   {osp.relpath(best[-1], ROOT)}')
    if logs:
        print(f'  training log:      {osp.relpath(logs[0], ROOT)}')
    vis = osp.join(run_dir, 'vis_data')
    print(f'  scalars + images:  {osp.relpath(vis, ROOT)} '
          f'(vis_image/ holds sample predictions)')
    print(f'  TensorBoard:       tensorboard --logdir '
          f'{osp.relpath(vis, ROOT)}')
    print('=' * 70)
    if top1 < TARGET_TOP1:
        sys.exit(f'error: top-1 {top1:.2f} % is below {TARGET_TOP1} %')


if __name__ == '__main__':
    main()
