# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Each compat fix: the defect is real without it, gone with it, and the fix
stands aside where upstream is fixed."""
import importlib
import os.path as osp
import types

import pytest
import torch

import mmaction_tdx
from mmaction_tdx import compat
from mmaction_tdx.compat import (
    importlib_metadata_shim,
    mmaction_drn,
    resnet_train,
    resnet_tsm_scratch,
    torch_load,
)

BLOCK_BACKPORT = '''
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == 'importlib_metadata':
            raise ModuleNotFoundError("No module named 'importlib_metadata'")
sys.meta_path.insert(0, Block())
'''


def test_needed_fixes_are_active_on_this_stack():
    status = compat.status()
    # The backport is installed as our dependency, so its shim stands aside.
    assert status == dict(
        importlib_metadata=False,
        mmaction_drn=True,
        torch_weights_only=True,
        resnet_train_returns_self=True,
        mmengine_config_scope=True,
        resnet_tsm_from_scratch=True,
        mmengine_cpu_distributed=True), status


def test_drn_defect_real_and_fixed(python_runner):
    broken = python_runner(
        'import mmaction.models',
        env=dict(MMACTION_TDX_SKIP_COMPAT='mmaction_drn'))
    if broken.returncode == 0:
        pytest.skip('this mmaction2 ships localizers/drn: fix not needed')
    assert "No module named 'mmaction.models.localizers.drn'" in broken.stderr
    fixed = python_runner('import mmaction_tdx, mmaction.models')
    assert fixed.returncode == 0, fixed.stderr


def test_drn_placeholder_explains_itself():
    from mmaction.models.localizers import DRN
    with pytest.raises(ImportError, match='mmaction2 from source'):
        DRN()


def test_drn_fix_stands_aside_when_upstream_ships_it(tmp_path, monkeypatch):
    package = tmp_path / 'mmaction'
    (package / 'models' / 'localizers' / 'drn').mkdir(parents=True)
    (package / 'models' / 'localizers' / 'drn' / 'drn.py').write_text('')
    fake_spec = types.SimpleNamespace(
        submodule_search_locations=[str(package)])
    monkeypatch.setattr(mmaction_drn.importlib.util, 'find_spec',
                        lambda name: fake_spec)
    assert not mmaction_drn.is_needed()


def test_importlib_metadata_defect_real_and_fixed(python_runner):
    broken = python_runner(
        BLOCK_BACKPORT + 'import mmaction_tdx',
        env=dict(MMACTION_TDX_SKIP_COMPAT='importlib_metadata'))
    assert broken.returncode != 0
    assert "No module named 'importlib_metadata'" in broken.stderr
    fixed = python_runner(BLOCK_BACKPORT +
                          'import mmaction_tdx, mmaction.models')
    assert fixed.returncode == 0, fixed.stderr


def test_importlib_metadata_declared_as_dependency():
    from importlib.metadata import requires
    names = [r.split(';')[0].strip() for r in requires('mmaction_tdx')]
    assert 'importlib_metadata' in names
    # With the backport installed the shim must not replace it.
    assert not importlib_metadata_shim.is_needed()
    backport = importlib.import_module('importlib_metadata')
    assert backport.__name__ == 'importlib_metadata'


def test_resnet_train_defect_real_and_fixed(python_runner):
    code = '''
    import mmaction_tdx
    from mmaction.models import ResNet
    net = ResNet(depth=18, pretrained=None)
    print(net.eval() is net, net.train() is net)
    '''
    broken = python_runner(
        code, env=dict(MMACTION_TDX_SKIP_COMPAT='resnet_train_returns_self'))
    assert broken.returncode == 0, broken.stderr
    if broken.stdout.split() == ['True', 'True']:
        pytest.skip('upstream ResNet.train already returns self')
    assert broken.stdout.split() == ['False', 'False']
    fixed = python_runner(code)
    assert fixed.stdout.split() == ['True', 'True'], fixed.stderr


def test_resnet_train_still_freezes_and_sets_bn_eval():
    from mmaction.models import ResNet
    net = ResNet(depth=18, pretrained=None, frozen_stages=1, norm_eval=True)
    assert net.train() is net
    assert not net.conv1.bn.training  # norm_eval kept by the wrapped method
    assert not net.conv1.conv.weight.requires_grad
    assert not resnet_train.is_needed()


def test_fixes_are_idempotent():
    before = compat.status()
    assert compat.apply_all() == before
    assert mmaction_drn.apply() and torch_load.apply()


def test_unknown_skip_name_is_an_error(monkeypatch):
    monkeypatch.setenv(compat.SKIP_ENV, 'no_such_fix')
    with pytest.raises(ValueError, match='unknown fixes'):
        compat.apply_all()


def test_version_is_exposed():
    assert mmaction_tdx.__version__.count('.') == 2
    assert osp.isfile(osp.join(osp.dirname(mmaction_tdx.__file__),
                               'version.py'))


class _ScratchTSM(resnet_tsm_scratch.ScratchInitTSMMixin):
    """A TSM-based backbone of ours (the mixin first in the bases)."""


def _scratch_tsm_class():
    from mmaction.models import ResNetTSM
    return type('ScratchTSM', (_ScratchTSM, ResNetTSM), {})


def test_resnet_tsm_from_scratch_defect_real_and_fixed(python_runner):
    # Upstream's class, after `import mmaction_tdx`: still defective, as
    # we change no upstream class.
    code = '''
    import mmaction_tdx
    from mmaction.models import ResNetTSM
    net = ResNetTSM(depth=18, pretrained=None, num_segments=2)
    net.init_weights()
    print('initialised')
    '''
    broken = python_runner(code)
    if broken.returncode == 0:
        pytest.skip('upstream ResNetTSM already accepts pretrained=None')
    assert "expected string or bytes-like object, got 'NoneType'" in (
        broken.stderr)
    assert resnet_tsm_scratch.is_needed()
    # Ours (the mixin) initialises from scratch, as ResNet does.
    net = _scratch_tsm_class()(depth=18, pretrained=None, num_segments=2)
    before = net.conv1.conv.weight.detach().clone()
    net.init_weights()
    assert not torch.equal(before, net.conv1.conv.weight)  # re-initialised
    # Upstream's class is untouched.
    from mmaction.models import ResNetTSM
    assert ResNetTSM.init_weights.__module__ == \
        'mmaction.models.backbones.resnet_tsm'
    # Our TSM configs train from scratch through upstream's own switch.
    import glob

    from mmengine.config import Config
    configs = glob.glob(osp.join(osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))), 'configs', 'quickstart', 'tsm*.py'))
    assert len(configs) >= 2, configs  # TSM, TSM + TD loss
    for path in configs:
        backbone = Config.fromfile(path).model.backbone
        assert backbone.pretrained is None and \
            backbone.pretrained2d is False, path


def test_resnet_tsm_with_checkpoint_still_uses_upstream_loader(
        tmp_path, monkeypatch):
    from mmaction.models import ResNetTSM
    calls = []
    monkeypatch.setattr(ResNetTSM, 'load_original_weights',
                        lambda self, logger: calls.append(self.pretrained))
    for cls in (ResNetTSM, _scratch_tsm_class()):
        net = cls(depth=18, pretrained='some.pth', num_segments=2)
        net.init_weights()
    assert calls == ['some.pth', 'some.pth']


def test_scratch_mixin_defers_to_a_fixed_upstream(monkeypatch):
    monkeypatch.setattr(resnet_tsm_scratch._versions, 'installed',
                        lambda name: '1.2.1')
    assert not resnet_tsm_scratch.is_needed()
    net = _scratch_tsm_class()(depth=18, pretrained=None, num_segments=2)
    # upstream's method runs (and, being 1.2.0's, fails on None)
    with pytest.raises(TypeError):
        net.init_weights()


def test_config_scope_fix_is_registered():
    from mmengine.config.utils import MODULE2PACKAGE
    assert MODULE2PACKAGE['mmaction_tdx'] == 'mmaction_tdx'


@pytest.mark.parametrize('fix', [resnet_train, resnet_tsm_scratch])
def test_resnet_fixes_decide_by_the_installed_version(fix, monkeypatch):
    """Needed up to the last defective mmaction2 release (1.2.0, this
    stack's), not after; no source is read."""
    assert fix.LAST_DEFECTIVE == '1.2.0'
    from importlib.metadata import version
    assert version('mmaction2') == '1.2.0'
    if fix is resnet_train:
        # its wrapper is installed on this stack: ask about an unwrapped
        # upstream ResNet
        monkeypatch.setattr(fix, '_upstream_resnet', lambda: types.
                            SimpleNamespace(train=lambda self, mode: None))
    for found, needed in (('1.2.0', True), ('1.1.0', True),
                          ('1.2.1', False), ('2.0.0rc1', False)):
        monkeypatch.setattr(fix._versions, 'installed',
                            lambda name, found=found: found)
        assert fix.is_needed() is needed, found
    # a source checkout without metadata: assume the defect
    monkeypatch.setattr(fix._versions, 'installed', lambda name: None)
    assert fix.is_needed()


def test_no_model_is_built_at_import(python_runner):
    """Deciding the fixes reads installed versions; it builds no
    network."""
    result = python_runner('''
    import torch.nn
    built = []
    upstream_init = torch.nn.Module.__init__
    def counting_init(self, *args, **kwargs):
        built.append(type(self).__name__)
        upstream_init(self, *args, **kwargs)
    torch.nn.Module.__init__ = counting_init
    import mmaction_tdx
    print(len(built), sorted(set(built))[:5])
    ''')
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[0] == '0', result.stdout
