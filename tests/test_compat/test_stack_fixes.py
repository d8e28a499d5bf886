# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Each compat fix: the defect is real without it, gone with it, and the fix
stands aside where upstream is fixed."""
import importlib
import os.path as osp
import types

import pytest

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


def test_resnet_tsm_from_scratch_defect_real_and_fixed(python_runner):
    code = '''
    import mmaction_tdx
    from mmaction.models import ResNetTSM
    net = ResNetTSM(depth=18, pretrained=None, num_segments=2)
    net.init_weights()
    print('initialised')
    '''
    broken = python_runner(
        code, env=dict(MMACTION_TDX_SKIP_COMPAT='resnet_tsm_from_scratch'))
    if broken.returncode == 0:
        pytest.skip('upstream ResNetTSM already accepts pretrained=None')
    assert "expected string or bytes-like object, got 'NoneType'" in (
        broken.stderr)
    fixed = python_runner(code)
    assert fixed.stdout.strip().endswith('initialised'), fixed.stderr


def test_resnet_tsm_with_checkpoint_still_uses_upstream_loader(
        tmp_path, monkeypatch):
    from mmaction.models import ResNetTSM
    calls = []
    monkeypatch.setattr(ResNetTSM, 'load_original_weights',
                        lambda self, logger: calls.append(self.pretrained))
    net = ResNetTSM(depth=18, pretrained='some.pth', num_segments=2)
    net.init_weights()
    assert calls == ['some.pth']


def test_config_scope_fix_is_registered():
    from mmengine.config.utils import MODULE2PACKAGE
    assert MODULE2PACKAGE['mmaction_tdx'] == 'mmaction_tdx'


# Independent statements of upstream's methods for the source checks: the
# defective mmaction2 1.2.0 shapes and plausible fixed ones.
class _Upstream:

    def train_1_2_0(self, mode=True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                m.eval()

    def train_fixed(self, mode=True):
        super().train(mode)
        self._freeze_stages()
        return self

    def train_nested_return_only(self, mode=True):
        def helper():
            return 1
        super().train(mode)

    def init_weights_1_2_0(self):
        if self.pretrained2d:
            logger = object()
            self.load_original_weights(logger)
        else:
            if self.pretrained:
                self.init_cfg = dict(type='Pretrained')
            super().init_weights()

    def init_weights_fixed_condition(self):
        if self.pretrained2d and self.pretrained:
            self.load_original_weights(None)
        else:
            super().init_weights()

    def init_weights_fixed_inside(self):
        if self.pretrained2d:
            if self.pretrained is None:
                return super().init_weights()
            self.load_original_weights(None)


def test_resnet_train_need_is_read_from_the_source():
    assert not resnet_train.returns_a_value(_Upstream.train_1_2_0)
    assert resnet_train.returns_a_value(_Upstream.train_fixed)
    # A nested function's return is not the method's.
    assert not resnet_train.returns_a_value(_Upstream.train_nested_return_only)
    # The installed upstream (the wrapper unwraps to it) is 1.2.0's.
    from mmaction.models.backbones.resnet import ResNet
    assert not resnet_train.returns_a_value(ResNet.train)


def test_resnet_tsm_need_is_read_from_the_source():
    check = resnet_tsm_scratch.loads_without_checking_pretrained
    assert check(_Upstream.init_weights_1_2_0)
    assert not check(_Upstream.init_weights_fixed_condition)
    assert not check(_Upstream.init_weights_fixed_inside)
    from mmaction.models.backbones.resnet_tsm import ResNetTSM
    assert check(ResNetTSM.init_weights)


def test_no_model_is_built_at_import(python_runner):
    """Deciding the fixes reads upstream's source; it builds no network."""
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
