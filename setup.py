# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Packaging for mmaction_tdx, an MMAction2 extension (TDN and TDRL).

Configs, tools and the model index are copied into ``mmaction_tdx/.mim`` at
build time (``mim`` looks for them there), the OpenMMLab way.
"""
import os
import os.path as osp
import shutil
import sys

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py

HERE = osp.dirname(osp.abspath(__file__))
MIM_FILES = ['configs', 'tools', 'model-index.yml']
# Start-up hook for ``mmaction_tdx::`` config paths (see
# _mmaction_tdx_config_scope.py). A .pth file only runs from the top of
# site-packages, so the build writes it beside the top-level modules; it is
# generated rather than kept in the repository, where ``*.pth`` means a
# checkpoint and is ignored.
STARTUP_PTH = 'mmaction_tdx-config-scope.pth'
STARTUP_LINE = 'import _mmaction_tdx_config_scope\n'


class BuildPyWithStartupHook(build_py):
    """``build_py`` that also writes :data:`STARTUP_PTH` into the build."""

    def run(self):
        super().run()
        target = osp.join(self.build_lib, STARTUP_PTH)
        with open(target, 'w') as f:
            f.write(STARTUP_LINE)

    def get_outputs(self, include_bytecode=1):
        return super().get_outputs(include_bytecode) + [
            osp.join(self.build_lib, STARTUP_PTH)
        ]


def readme() -> str:
    with open(osp.join(HERE, 'README.md'), encoding='utf-8') as f:
        return f.read()


def get_version() -> str:
    scope = {}
    with open(osp.join(HERE, 'mmaction_tdx', 'version.py')) as f:
        exec(compile(f.read(), 'version.py', 'exec'), scope)
    return scope['__version__']


def parse_requirements(path: str) -> list:
    requirements = []
    with open(osp.join(HERE, path)) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line and not line.startswith('-'):
                requirements.append(line)
    return requirements


def add_mim_extension() -> None:
    """Expose configs/tools/model-index under ``mmaction_tdx/.mim``.

    Editable installs (``pip install -e``) get symlinks so edits show up at
    once; wheels and sdists get copies.
    """
    if {'sdist', 'bdist_wheel', 'install', 'build', 'build_py'} & set(
            sys.argv):
        mode = 'copy'
    else:  # develop, editable_wheel, egg_info
        mode = 'symlink'
    mim_root = osp.join(HERE, 'mmaction_tdx', '.mim')
    os.makedirs(mim_root, exist_ok=True)
    for name in MIM_FILES:
        src = osp.join(HERE, name)
        dst = osp.join(mim_root, name)
        if not osp.exists(src):
            continue
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if mode == 'symlink':
            os.symlink(osp.relpath(src, mim_root), dst)
        elif osp.isdir(src):
            shutil.copytree(
                src,
                dst,
                ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
        else:
            shutil.copyfile(src, dst)


if __name__ == '__main__':
    add_mim_extension()
    setup(
        name='mmaction_tdx',
        version=get_version(),
        description='TDN and TDRL temporal modelling for MMAction2',
        long_description=readme(),
        long_description_content_type='text/markdown',
        keywords='computer vision, video understanding, action recognition',
        packages=find_packages(exclude=('configs', 'tools', 'tests', 'docs')),
        py_modules=['_mmaction_tdx_config_scope'],
        cmdclass={'build_py': BuildPyWithStartupHook},
        include_package_data=True,
        package_data={'mmaction_tdx': ['.mim/**/*', '.mim/*']},
        python_requires='>=3.8',
        license='Apache License 2.0',
        install_requires=parse_requirements('requirements/runtime.txt'),
        extras_require={
            'tests': parse_requirements('requirements/tests.txt'),
            'mim': parse_requirements('requirements/mminstall.txt'),
            'deploy': parse_requirements('requirements/deploy.txt'),
        },
        classifiers=[
            'Programming Language :: Python :: 3',
            'Topic :: Scientific/Engineering :: Artificial Intelligence',
        ],
        zip_safe=False)
