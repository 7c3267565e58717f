# Copyright (c) mmvan contributors. All rights reserved.
import os
import os.path as osp
import re
import shutil
import sys
from setuptools import find_packages, setup


def readme():
    with open('README.md', encoding='utf-8') as f:
        return f.read()


def get_version():
    with open(osp.join('mmvan', 'version.py'), encoding='utf-8') as f:
        exec(compile(f.read(), 'mmvan/version.py', 'exec'))
    return locals()['__version__']


def parse_requirements(fname):
    """Read a requirement file, following ``-r`` includes."""
    reqs = []
    with open(fname, encoding='utf-8') as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if not line:
                continue
            if line.startswith('-r '):
                include = osp.join(osp.dirname(fname), line[3:].strip())
                reqs.extend(parse_requirements(include))
            else:
                reqs.append(re.sub(r'\s+', '', line))
    return reqs


def add_mim_extension():
    """Ship ``configs/``, ``tools/`` and ``model-index.yml`` inside the
    package as ``mmvan/.mim`` so that ``mmvan::`` config inheritance works
    from an installed package (the layout mmengine and mim look for).

    Editable installs get symlinks, other installs get copies.
    """
    if 'develop' in sys.argv or any('editable' in a for a in sys.argv):
        mode = 'symlink'
    elif any(a in sys.argv for a in ('sdist', 'bdist_wheel', 'install')):
        mode = 'copy'
    else:
        # pip's PEP 660 editable path calls neither of the above.
        mode = 'symlink'

    files = ['configs', 'tools', 'model-index.yml']
    repo = osp.dirname(osp.abspath(__file__))
    mim_path = osp.join(repo, 'mmvan', '.mim')
    os.makedirs(mim_path, exist_ok=True)
    for name in files:
        src = osp.join(repo, name)
        dst = osp.join(mim_path, name)
        if not osp.exists(src):
            continue
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if mode == 'symlink':
            os.symlink(osp.relpath(src, osp.dirname(dst)), dst)
        else:
            if osp.isfile(src):
                shutil.copyfile(src, dst)
            else:
                shutil.copytree(src, dst)


if __name__ == '__main__':
    add_mim_extension()
    setup(
        name='mmvan',
        version=get_version(),
        description='Visual Attention Network (VAN, LKA and LSKA) '
        'for OpenMMLab 2.0',
        long_description=readme(),
        long_description_content_type='text/markdown',
        keywords='computer vision, image classification, visual attention '
        'network, large kernel attention',
        packages=find_packages(exclude=('configs', 'tools', 'demo', 'tests')),
        include_package_data=True,
        package_data={
            'mmvan': [
                '.mim/**/*', '.mim/*', 'analysis/data/*.txt',
                'backends/data/*.jpg'
            ]
        },
        python_requires='>=3.11',
        license='Apache License 2.0',
        install_requires=parse_requirements('requirements/runtime.txt'),
        extras_require={
            'all': parse_requirements('requirements/optional.txt'),
            'tests': parse_requirements('requirements/tests.txt'),
            'build': parse_requirements('requirements/build.txt'),
        },
        zip_safe=False)
