# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Checkpoints by URL: every scheme MMEngine resolves to a download
(``http(s)://``, ``open-mmlab://``, ``mmcls://``, ``torchvision://``),
the download cache, and the users of URLs (``load_from``, ``pretrained=``,
``init_recognizer``, the demo) load with ``weights_only=True`` and check
the hash in the file name (issue 16).

The cache tests seed ``$TORCH_HOME/hub/checkpoints`` and forbid any
download, so they need no network; the download tests serve files from
a local HTTP server."""
import functools
import hashlib
import http.server
import os.path as osp
import re
import shutil
import threading
import zipfile

import pytest
import torch
from checkpoint_payloads import (
    ShellPayload,
    assert_clear_refusal,
    hostile_checkpoint,
    tiny_runner,
)
from mmengine.config import Config
from mmengine.runner import checkpoint as mme
from mmengine.runner.checkpoint import CheckpointLoader
from mmengine.utils import dl_utils
from reliability_helpers import (
    PYTHON,
    REPO_ROOT,
    make_synthetic_data,
    run_tool,
    single_thread,  # noqa: F401 (autouse)
)

from mmaction_tdx.compat import safe_checkpoint, torch_load
from mmaction_tdx.compat.safe_checkpoint import (
    CheckpointFileError,
    UnsafeCheckpointError,
)

# What our TDN and TDRL base configs give as ``pretrained``.
IMAGENET_URL = 'https://download.pytorch.org/models/resnet50-19c8e357.pth'
# A model-zoo URL whose file name carries no hash.
PLAIN_URL = 'https://download.example.org/models/tdn_r50_k400.pth'


@pytest.fixture
def marker(tmp_path):
    path = str(tmp_path / 'payload_ran')
    yield path
    assert not osp.exists(path)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty ``$TORCH_HOME/hub/checkpoints``; downloading fails the
    test (what is seeded here must be found here)."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    directory = tmp_path / 'torch_home' / 'hub' / 'checkpoints'
    directory.mkdir(parents=True)

    def no_download(url, *args, **kwargs):
        raise AssertionError(f'unexpected download of {url}')

    monkeypatch.setattr(torch.hub, 'download_url_to_file', no_download)
    monkeypatch.setattr(safe_checkpoint, 'download_url_to_file', no_download)
    return directory


def seed(cache_dir, url: str, payload) -> str:
    """Plant a checkpoint carrying ``payload`` as the cached ``url``."""
    return hostile_checkpoint(
        str(cache_dir / osp.basename(url)), payload)


def assert_hash_refusal(message: str, cached: str, prefix: str) -> None:
    assert f'its cached copy {cached} does not match the SHA-256 prefix ' \
        f'{prefix}' in message
    assert 'It was not loaded' in message


def test_loaders_are_ours():
    for url in ('http://x/a.pth', 'https://x/a.pth', 'open-mmlab://x',
                'openmmlab://x', 's3://bucket/a.pth', 'pavi://a'):
        loader = CheckpointLoader._get_checkpoint_loader(url)
        assert loader.__module__ == torch_load.__name__, url
    # The schemes that resolve names to URLs call this by its module name.
    assert mme.load_from_http is torch_load.load_from_http
    assert mme.load_url is dl_utils.load_url is torch_load.load_url


def test_cached_payload_with_hash_in_name_refused(cache, marker):
    """The issue's attack: our configs' ImageNet URL, cache seeded with an
    ``os.system`` payload. The hash check refuses the file unread."""
    cached = seed(cache, IMAGENET_URL, ShellPayload(marker))
    with pytest.raises(CheckpointFileError) as info:
        CheckpointLoader.load_checkpoint(IMAGENET_URL, map_location='cpu')
    assert_hash_refusal(str(info.value), cached, '19c8e357')
    assert osp.exists(cached)  # left for the user to look at


def test_cached_payload_without_hash_refused(cache, marker):
    cached = seed(cache, PLAIN_URL, ShellPayload(marker))
    with pytest.raises(UnsafeCheckpointError) as info:
        CheckpointLoader.load_checkpoint(PLAIN_URL, map_location='cpu')
    assert_clear_refusal(str(info.value), cached)
    assert 'posix.system' in str(info.value)


def test_cached_file_with_its_hash_loads(cache):
    """A genuine file under its own hash loads, MMEngine types included."""
    source = hostile_checkpoint(str(cache / 'tmp.pth'), payload=7)
    digest = hashlib.sha256(open(source, 'rb').read()).hexdigest()
    shutil.move(source, cache / f'tdn-{digest[:8]}.pth')
    url = f'https://download.example.org/models/tdn-{digest[:8]}.pth'
    checkpoint = CheckpointLoader.load_checkpoint(url, map_location='cpu')
    assert checkpoint['meta']['extra'] == 7
    assert checkpoint['message_hub']['log_scalars']['train/loss'].current(
    ) == 1.0


# Names in MMEngine's own tables, resolved to hash-named URLs.
TABLE_NAMES = {
    'open-mmlab://': ('get_external_models', 'resnet50_v1c'),
    'mmcls://': ('get_mmcls_models', 'resnet50'),
    'torchvision://': ('get_torchvision_models', 'resnet50'),
}


@pytest.mark.parametrize('prefix', list(TABLE_NAMES))
def test_scheme_payload_refused(cache, marker, monkeypatch, prefix):
    """Each scheme reaches our URL loader: a payload in the cache under
    the table's (hash-named) file is refused by the hash, under a
    hash-free name by ``weights_only``."""
    table, name = TABLE_NAMES[prefix]
    if prefix == 'torchvision://':
        # MMEngine builds this table from torchvision (not installed).
        monkeypatch.setattr(mme, table, lambda: {name: IMAGENET_URL})
    url = getattr(mme, table)()[name]
    cached = seed(cache, url, ShellPayload(marker))
    with pytest.raises(CheckpointFileError) as info:
        CheckpointLoader.load_checkpoint(prefix + name, map_location='cpu')
    prefix_in_name = re.search(r'-([0-9a-f]{8})\.pth$', url).group(1)
    assert_hash_refusal(str(info.value), cached, prefix_in_name)

    monkeypatch.setattr(mme, table, lambda: {name: PLAIN_URL})
    cached = seed(cache, PLAIN_URL, ShellPayload(marker))
    with pytest.raises(UnsafeCheckpointError) as info:
        CheckpointLoader.load_checkpoint(prefix + name, map_location='cpu')
    assert_clear_refusal(str(info.value), cached)


def test_open_mmlab_local_file_payload_refused(tmp_path, marker,
                                                monkeypatch):
    """``open-mmlab://`` names may map to files under $MMENGINE_HOME."""
    monkeypatch.setenv('MMENGINE_HOME', str(tmp_path))
    monkeypatch.setattr(mme, 'get_external_models',
                        lambda: {'mine': 'mine.pth'})
    path = hostile_checkpoint(str(tmp_path / 'mine.pth'),
                              ShellPayload(marker))
    with pytest.raises(UnsafeCheckpointError) as info:
        CheckpointLoader.load_checkpoint('open-mmlab://mine')
    assert_clear_refusal(str(info.value), path)


def test_mmengine_load_url_refuses_payload(cache, marker):
    cached = seed(cache, PLAIN_URL, ShellPayload(marker))
    with pytest.raises(UnsafeCheckpointError):
        dl_utils.load_url(PLAIN_URL)
    assert osp.exists(cached)


# --------------------------------------------------------------------------
# Downloads (a local HTTP server)
# --------------------------------------------------------------------------
class QuietHandler(http.server.SimpleHTTPRequestHandler):

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path, monkeypatch):
    """``(directory served, base URL)``; the cache is empty."""
    served = tmp_path / 'served'
    served.mkdir()
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    for name in ('no_proxy', 'NO_PROXY'):
        monkeypatch.setenv(name, '127.0.0.1,localhost')
    httpd = http.server.ThreadingHTTPServer(
        ('127.0.0.1', 0),
        functools.partial(QuietHandler, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield served, f'http://127.0.0.1:{httpd.server_address[1]}'
    httpd.shutdown()
    httpd.server_close()


def cache_files(tmp_path):
    directory = tmp_path / 'torch_home' / 'hub' / 'checkpoints'
    return sorted(p.name for p in directory.iterdir()) if \
        directory.is_dir() else []


def test_download_not_matching_its_hash_is_not_kept(server, tmp_path,
                                                     marker):
    served, base = server
    hostile_checkpoint(str(served / 'tdn-0123abcd.pth'), ShellPayload(marker))
    with pytest.raises(CheckpointFileError) as info:
        CheckpointLoader.load_checkpoint(f'{base}/tdn-0123abcd.pth')
    assert 'does not match the SHA-256 prefix 0123abcd' in str(info.value)
    assert cache_files(tmp_path) == []  # neither the file nor a partial


def test_downloaded_payload_refused(server, tmp_path, marker):
    served, base = server
    hostile_checkpoint(str(served / 'tdn.pth'), ShellPayload(marker))
    with pytest.raises(UnsafeCheckpointError):
        CheckpointLoader.load_checkpoint(f'{base}/tdn.pth')
    assert cache_files(tmp_path) == ['tdn.pth']


def test_download_with_its_hash_loads(server, tmp_path):
    served, base = server
    source = hostile_checkpoint(str(tmp_path / 'tmp.pth'), payload=5)
    digest = hashlib.sha256(open(source, 'rb').read()).hexdigest()[:8]
    shutil.move(source, served / f'tdn-{digest}.pth')
    checkpoint = CheckpointLoader.load_checkpoint(f'{base}/tdn-{digest}.pth')
    assert checkpoint['meta']['extra'] == 5
    # Loaded again from the cache, checked again.
    assert CheckpointLoader.load_checkpoint(
        f'{base}/tdn-{digest}.pth')['meta']['extra'] == 5


def test_failed_download_named(server):
    _, base = server
    with pytest.raises(CheckpointFileError) as info:
        CheckpointLoader.load_checkpoint(f'{base}/missing.pth')
    assert str(info.value).startswith(
        f'Cannot download the checkpoint {base}/missing.pth')
    assert '404' in str(info.value)


# --------------------------------------------------------------------------
# The users of URLs
# --------------------------------------------------------------------------
@pytest.fixture(scope='module')
def synthetic_data(tmp_path_factory):
    return make_synthetic_data(str(tmp_path_factory.mktemp('synthetic')))


def test_load_from_url_refused(synthetic_data, cache, tmp_path, marker):
    cached = seed(cache, PLAIN_URL, ShellPayload(marker))
    runner = tiny_runner(
        synthetic_data, str(tmp_path / 'work'), load_from=PLAIN_URL)
    with pytest.raises(UnsafeCheckpointError) as info:
        runner.train()
    assert_clear_refusal(str(info.value), cached)


@pytest.mark.parametrize(
    'base', ['tdn_r50.py', 'tdrl_r50.py', 'mmaction_resnet'],
    ids=['ResNetTDN', 'ResNetTDRL', 'MMAction2_ResNet'])
def test_pretrained_url_refused(cache, marker, base):
    """``pretrained=`` of our base configs (the ImageNet URL), and of
    MMAction2's ResNet, through a cache seeded with a payload."""
    from mmaction.registry import MODELS
    if base == 'mmaction_resnet':
        backbone = dict(type='ResNet', depth=50, pretrained=IMAGENET_URL)
    else:
        backbone = Config.fromfile(
            osp.join(REPO_ROOT, 'configs', '_base_', 'models',
                     base)).model.backbone
        assert backbone.pretrained == IMAGENET_URL
    cached = seed(cache, IMAGENET_URL, ShellPayload(marker))
    model = MODELS.build(backbone)
    with pytest.raises(CheckpointFileError) as info:
        model.init_weights()
    assert_hash_refusal(str(info.value), cached, '19c8e357')


def test_init_recognizer_url_refused(cache, marker):
    from mmaction_tdx.apis import init_video_recognizer
    cached = seed(cache, PLAIN_URL, ShellPayload(marker))
    config = osp.join(REPO_ROOT, 'configs', '_base_', 'models',
                      'tdrl_r50.py')
    with pytest.raises(UnsafeCheckpointError) as info:
        init_video_recognizer(config, PLAIN_URL, device='cpu')
    assert_clear_refusal(str(info.value), cached)


def test_demo_url_refused(tmp_path, marker):
    home = tmp_path / 'torch_home'
    (home / 'hub' / 'checkpoints').mkdir(parents=True)
    cached = seed(home / 'hub' / 'checkpoints', PLAIN_URL,
                  ShellPayload(marker))
    labels = tmp_path / 'labels.txt'
    labels.write_text('a\nb\n')
    result = run_tool([
        PYTHON, 'demo/demo.py', 'configs/_base_/models/tdrl_r50.py',
        PLAIN_URL, str(tmp_path / 'video.mp4'), str(labels), '--device', 'cpu'
    ], env=dict(TORCH_HOME=str(home)))
    assert result.returncode == 1, result.stderr[-2000:]
    assert 'error: UnsafeCheckpointError: ' in result.stderr
    assert 'Traceback' not in result.stderr  # the message, not a stack
    assert_clear_refusal(result.stderr, cached)


def test_url_payload_runs_without_the_fix(tmp_path):
    """Control: with the fix skipped, MMEngine's URL loader runs the
    cached payload (so the tests above would notice a gap)."""
    home = tmp_path / 'torch_home'
    (home / 'hub' / 'checkpoints').mkdir(parents=True)
    ran = tmp_path / 'ran'
    seed(home / 'hub' / 'checkpoints', PLAIN_URL, ShellPayload(str(ran)))
    result = run_tool([
        PYTHON, '-c', 'import mmaction_tdx\n'
        'from mmengine.runner.checkpoint import CheckpointLoader\n'
        f'CheckpointLoader.load_checkpoint({PLAIN_URL!r})\n'
    ], env=dict(TORCH_HOME=str(home),
                MMACTION_TDX_SKIP_COMPAT='torch_weights_only'))
    assert osp.exists(ran), result.stderr[-2000:]


def zipped_legacy_checkpoint(path: str, obj) -> str:
    """What torch.hub still reads: a zip of one ``torch.save`` file in the
    format of torch < 1.6."""
    inner = path + '.inner'
    torch.save(obj, inner, _use_new_zipfile_serialization=False)
    with zipfile.ZipFile(path, 'w') as archive:
        archive.write(inner, 'weights.pth')
    return path


def test_zipped_legacy_checkpoint_checked_too(cache, marker):
    url = 'https://download.example.org/models/old.pth'
    zipped_legacy_checkpoint(str(cache / 'old.pth'),
                             {'x': ShellPayload(marker)})
    with pytest.raises(UnsafeCheckpointError) as info:
        CheckpointLoader.load_checkpoint(url)
    assert 'posix.system' in str(info.value)
    zipped_legacy_checkpoint(str(cache / 'old.pth'),
                             {'w': torch.arange(3.)})
    assert torch.equal(CheckpointLoader.load_checkpoint(url)['w'],
                       torch.arange(3.))
