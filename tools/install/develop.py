# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Register this checkout in the current environment, legacy-develop style.

Why not ``pip install -e .``: with setuptools >= 64 that is a PEP 660
editable install, whose distribution metadata lives in site-packages while the
code stays here. ``mim`` 0.3.9 (``mim.utils.get_installed_path``) and
mmengine 0.10.7 (``mmengine.utils.get_installed_path``, used for
``mmaction_tdx::`` config bases) locate a package as
``<distribution location>/<package>``, i.e. ``site-packages/mmaction_tdx``,
which does not exist for such installs, so ``mim train mmaction_tdx ...``
fails with "can't open file .../site-packages/mmaction_tdx/.mim/tools/
train.py". The layout ``setup.py develop`` used to make (``.egg-info`` in the
checkout, the checkout on ``sys.path`` through a ``.pth`` file) puts the
distribution location at the checkout, where both tools find
``mmaction_tdx/.mim``. The ``.pth`` file also runs the start-up hook of
``_mmaction_tdx_config_scope.py`` (``mmaction_tdx::`` config paths).
Dependencies are installed separately (see Makefile).

Usage: ``python tools/install/develop.py`` (idempotent).
"""
import glob
import os
import os.path as osp
import shutil
import subprocess
import sys
import sysconfig

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PTH_NAME = 'mmaction_tdx-develop.pth'


def uninstall_wheel_install(site_packages: str) -> None:
    """Remove a ``pip install .`` of the package from this environment.

    Its ``site-packages/mmaction_tdx`` (and start-up hook) would come first
    on ``sys.path`` and hide the checkout; pip removes exactly the files
    its ``RECORD`` lists.
    """
    if glob.glob(osp.join(site_packages, 'mmaction_tdx-*.dist-info')):
        subprocess.run([sys.executable, '-m', 'pip', 'uninstall', '-y', '-q',
                        'mmaction_tdx'], check=True)


def remove_pep660_install(site_packages: str) -> None:
    for name in os.listdir(site_packages):
        lowered = name.lower()
        if lowered.startswith(('__editable__.mmaction_tdx',
                               '__editable___mmaction_tdx',
                               'mmaction_tdx-')) and name != PTH_NAME:
            path = osp.join(site_packages, name)
            if osp.isdir(path):
                shutil.rmtree(path)
            else:
                os.remove(path)


def main() -> None:
    site_packages = sysconfig.get_paths()['purelib']
    uninstall_wheel_install(site_packages)
    remove_pep660_install(site_packages)
    subprocess.run([sys.executable, 'setup.py', '-q', 'egg_info'],
                   cwd=ROOT,
                   check=True)
    with open(osp.join(site_packages, PTH_NAME), 'w') as f:
        # The path first: the second line imports the start-up hook from it.
        f.write(ROOT + '\n' + 'import _mmaction_tdx_config_scope\n')
    print(f'registered {ROOT} in {site_packages}/{PTH_NAME}')


if __name__ == '__main__':
    main()
