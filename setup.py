# Copyright (c) finers_mm contributors. All rights reserved.
"""Install finers_mm, the FineRS plugin for OpenMMLab.

The pinned stack below is the one measured together in ../shared/DEPENDENCIES.md. mmcv 2.1.0 must be
compiled with its ops before this file is installed; ``bash tools/setup_env.sh`` does all of it in order.
"""
import os.path as osp

from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))


def read_version() -> str:
    scope: dict = {}
    with open(osp.join(HERE, 'finers_mm', 'version.py'), encoding='utf-8') as f:
        exec(f.read(), scope)
    return scope['__version__']


INSTALL_REQUIRES = [
    'torch==2.14.0',  # vllm 0.33.0 pins torch==2.14.0 / torchvision==0.29.0 exactly
    'torchvision==0.29.0',
    'mmengine==0.10.7',
    'mmcv==2.1.0',  # built from source with ops by tools/setup_env.sh
    'mmdet==3.3.0',
    'mmsegmentation==1.2.2',
    'ftfy',  # imported by mmseg.models
    'regex',  # imported by mmseg.models
    'transformers==5.20.2',  # the newest release vllm 0.33.0 accepts (>=5.16.1,<5.21)
    'tokenizers',
    'accelerate',
    'peft==0.21.2',
    'trl==1.16.0',
    'segment-anything==1.0',
    'sam2==1.1.0',  # sdist: installed first by tools/setup_env.sh (SAM2_BUILD_CUDA=0, no isolation)
    'pycocotools',
    'numpy>=2',
    'opencv-python',
    'Pillow',
    'setuptools<82',  # mmcv/mmseg import pkg_resources at run time
]

EXTRAS_REQUIRE = {
    'dev': ['pytest', 'pytest-timeout', 'hypothesis'],
    # Rollouts with vLLM colocated in the training process (pip install -e .[vllm]); CUDA only at run
    # time, but its Python API (mapper, SamplingParams) imports on CPU. It pins the torch/torchvision
    # and transformers range above, which is why they sit where they do.
    'vllm': ['vllm==0.33.0'],
}

setup(
    name='finers_mm',
    version=read_version(),
    description='FineRS (reasoning segmentation of extremely small objects with RL) as an OpenMMLab plugin',
    long_description=open(osp.join(HERE, 'README.md'), encoding='utf-8').read()
    if osp.exists(osp.join(HERE, 'README.md')) else '',
    long_description_content_type='text/markdown',
    packages=find_packages(include=['finers_mm', 'finers_mm.*']),
    include_package_data=True,
    python_requires='>=3.10',
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    license='Apache-2.0',
    zip_safe=False,
)
