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

# Start-up hook for ``mmaction_tdx::`` config paths (see
# _mmaction_tdx_config_scope.py); a .pth file must sit at the top of
# site-packages, so it is copied next to the top-level modules.
STARTUP_PTH = 'mmaction-tdx-config-scope.pth'


class BuildPyWithPth(build_py):

    def run(self):
        super().run()
        self.copy_file(
            osp.join(HERE, STARTUP_PTH), osp.join(self.build_lib,
                                                  STARTUP_PTH))

HERE = osp.dirname(osp.abspath(__file__))
MIM_FILES = ['configs', 'tools', 'model-index.yml']


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
            shutil.copytree(src, dst)
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
        cmdclass={'build_py': BuildPyWithPth},
        include_package_data=True,
        package_data={'mmaction_tdx': ['.mim/**/*', '.mim/*']},
        python_requires='>=3.8',
        license='Apache License 2.0',
        install_requires=parse_requirements('requirements/runtime.txt'),
        extras_require={
            'tests': parse_requirements('requirements/tests.txt'),
            'mim': parse_requirements('requirements/mminstall.txt'),
        },
        classifiers=[
            'Programming Language :: Python :: 3',
            'Topic :: Scientific/Engineering :: Artificial Intelligence',
        ],
        zip_safe=False)
