# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Each compat fix: the defect is real without it, gone with it, and the fix
stands aside where upstream is fixed."""
import importlib
import json
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


def _our_resnet_backbones():
    """Our registered backbones built on MMAction2's ``ResNet``, by name
    (every registry of the tree, so that a new one cannot be missed)."""
    from mmaction.models.backbones.resnet import ResNet
    from mmengine.registry import MODELS as ROOT

    import mmaction_tdx.models  # noqa: F401  (registers them)
    found, registries = {}, [ROOT]
    while registries:
        registry = registries.pop()
        registries.extend(registry.children.values())
        for name, cls in registry.module_dict.items():
            if isinstance(cls, type) and issubclass(cls, ResNet) and \
                    cls.__module__.startswith('mmaction_tdx.'):
                found[name] = cls
    return found


OUR_RESNETS = _our_resnet_backbones()


def test_import_leaves_upstream_resnet_train_alone(python_runner):
    """``import mmaction_tdx`` (and building our backbones) changes no
    attribute of MMAction2's ``ResNet``: ``ResNet.train`` is the very
    function object its module defined, and it still returns None where
    :func:`resnet_train.is_needed` says so (the defect our mixin works
    around is real)."""
    result = python_runner('''
    import importlib.abc, importlib.util, json, sys
    defined = {}

    class Snapshot(importlib.abc.MetaPathFinder):
        """ResNet's attributes right after its module ran."""
        def find_spec(self, name, path=None, target=None):
            if name != 'mmaction.models.backbones.resnet':
                return None
            sys.meta_path.remove(self)
            spec = importlib.util.find_spec(name)
            exec_module = spec.loader.exec_module
            def record(module):
                exec_module(module)
                defined.update(vars(module.ResNet))
            spec.loader.exec_module = record
            return spec

    sys.meta_path.insert(0, Snapshot())
    import mmaction_tdx
    from mmaction.models import ResNet, ResNetTSM
    from mmaction.registry import MODELS
    from mmaction_tdx.compat import resnet_train
    for name in ('ResNetTDN', 'ResNetTDRL', 'ResNetTSMTD'):
        MODELS.build(dict(type=name, depth=18, num_segments=2)).eval()
    assert 'train' in defined, 'the snapshot hook did not run'
    changed = sorted(k for k in set(defined) | set(vars(ResNet))
                     if vars(ResNet).get(k) is not defined.get(k))
    print(json.dumps(dict(
        same=ResNet.__dict__['train'] is defined['train'],
        subclass_same=ResNetTSM.train is defined['train'],
        changed=changed,
        returns_none=ResNet(depth=18).eval() is None,
        needed=resnet_train.is_needed())))
    ''')
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.splitlines()[-1])
    assert found['same'] and found['subclass_same'], found
    assert found['changed'] == [], found
    assert found['returns_none'] == found['needed'], found


@pytest.mark.parametrize('name', sorted(OUR_RESNETS))
def test_our_resnets_return_self_and_keep_freezing(name):
    """``train()``/``eval()`` return the module (chains work) and still do
    what upstream's ``train`` does: re-freeze ``frozen_stages`` and, with
    ``norm_eval``, keep every BN in eval mode."""
    from torch.nn.modules.batchnorm import _BatchNorm
    net = OUR_RESNETS[name](
        depth=18, num_segments=2, frozen_stages=1, norm_eval=True)
    assert net.eval() is net and not net.training
    assert net.train(False) is net and not net.training
    assert net.train() is net and net.training
    assert net.eval().requires_grad_(False) is net  # a chain
    net.requires_grad_(True)
    net.train()
    frozen = list(net.conv1.parameters()) + list(net.layer1.parameters())
    assert frozen and not any(p.requires_grad for p in frozen)
    assert not any(m.training for m in net.layer1.modules())
    assert all(p.requires_grad for p in net.layer2.parameters())
    assert net.layer2.training
    norms = [m for m in net.modules() if isinstance(m, _BatchNorm)]
    assert norms and not any(m.training for m in norms)
    # Without norm_eval the unfrozen stages' BN layers train.
    net.norm_eval = False
    assert net.train() is net
    assert all(m.training for m in net.layer2.modules()
               if isinstance(m, _BatchNorm))
    assert not net.conv1.bn.training  # frozen stem


def test_our_resnet_backbones_are_found():
    assert {'ResNetTDN', 'ResNetTDRL', 'ResNetTSMTD'} <= set(OUR_RESNETS)
    for cls in OUR_RESNETS.values():
        assert issubclass(cls, resnet_train.TrainReturnsSelfMixin), cls


def test_mixin_defers_to_a_fixed_upstream():
    """Upstream's result is returned whenever it is not None."""
    calls = []

    class Upstream:

        def __init__(self, result):
            self.result = result

        def train(self, mode=True):
            calls.append(mode)
            return self.result

    class Ours(resnet_train.TrainReturnsSelfMixin, Upstream):
        pass

    fixed = Ours('upstream result')
    assert fixed.train(False) == 'upstream result'
    defective = Ours(None)
    assert defective.train() is defective
    assert calls == [False, True]


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
