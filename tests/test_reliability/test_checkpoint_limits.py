# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""The safe loader under hostile shapes rather than hostile types
(issue 23, findings 8 and 9): zip bombs, a download that stalls, numpy
bools that are not 0 or 1, a tuple-list cycle around numpy data."""
import http.server
import io
import os.path as osp
import pickle
import struct
import sys
import threading
import time
import tracemalloc
import zipfile

import numpy as np
import pytest
import torch
from conftest import legacy_checkpoint
from reliability_helpers import single_thread  # noqa: F401 (autouse)

from mmaction_tdx.compat import safe_checkpoint
from mmaction_tdx.compat.safe_checkpoint import (
    DOWNLOAD_TIMEOUT_ENV,
    MAX_BYTES_ENV,
    CheckpointFileError,
    UnsafeCheckpointError,
    load_checkpoint_file,
)


# --------------------------------------------------------------------------
# Crafted pickles in torch's legacy (non-zip) format: magic number,
# protocol, system info, the object, its storage keys (none here).
# --------------------------------------------------------------------------
def fragment(obj) -> bytes:
    """The opcodes that build ``obj`` (no PROTO, no STOP), memo indices
    below 100."""
    data = pickle.dumps(obj, protocol=2)
    assert data[:2] == b'\x80\x02' and data[-1:] == b'.'
    return data[2:-1]


def put(index: int) -> bytes:
    return b'r' + struct.pack('<I', index)  # LONG_BINPUT


def get(index: int) -> bytes:
    return b'j' + struct.pack('<I', index)  # LONG_BINGET


def unicode(text: str) -> bytes:
    data = text.encode('utf-8', 'surrogatepass')
    return b'X' + struct.pack('<I', len(data)) + data  # BINUNICODE


def test_tuple_list_cycle_around_array_leaks_no_placeholder():
    """``{'t': t, 'l': l}`` with ``t = (array, l)`` and ``l = [t]``; the
    tuple is reached first, through the dict. A tuple is rebuilt when its
    array is, and ``l`` would keep the old one, with the loader's internal
    placeholder inside: refused instead."""
    raw = (b'\x80\x02' + b']' + put(100)  # l = []
           + fragment(np.arange(3.)) + get(100) + b'\x86' + put(101)
           + b'a'  # l.append(t), t = (array, l)
           + b'}(' + unicode('t') + get(101) + unicode('l') + get(100) +
           b'u.')  # {'t': t, 'l': l}
    with pytest.raises(UnsafeCheckpointError,
                       match='contains itself') as info:
        load_checkpoint_file(legacy_checkpoint(raw), name='cycle.pth')
    assert 'cycle.pth' in str(info.value)
    # The same cycle reached through the list first is rebuilt faithfully.
    raw_list_first = raw.replace(
        b'}(' + unicode('t') + get(101) + unicode('l') + get(100),
        b'}(' + unicode('l') + get(100) + unicode('t') + get(101))
    loaded = load_checkpoint_file(legacy_checkpoint(raw_list_first))
    t, lst = loaded['t'], loaded['l']
    assert isinstance(t[0], np.ndarray) and t[1] is lst and lst[0] is t
    np.testing.assert_array_equal(t[0], np.arange(3.))


@pytest.mark.parametrize('bad_byte', [b'\x02', b'\xff'])
@pytest.mark.parametrize('kind', ['array', 'scalar'])
def test_numpy_bool_other_than_0_or_1_refused(kind, bad_byte):
    """A bool is one byte, 0 or 1; numpy trusts that (other values break
    logical operations and comparisons). An array or scalar whose bytes
    say otherwise is refused, wherever the bad byte is."""
    value = np.array([1, 0, 1, 1], dtype=np.uint8) if kind == 'array' \
        else np.uint8(1)
    raw = pickle.dumps({'x': value}, protocol=2)
    # The same pickle with dtype 'b1' (bool) instead of 'u1'.
    as_bool = raw.replace(unicode('u1'), unicode('b1'))
    assert as_bool != raw
    loaded = load_checkpoint_file(legacy_checkpoint(as_bool))['x']
    assert loaded.dtype == np.bool_  # the control: 0 and 1 load
    good = b'\x01\x00\x01\x01' if kind == 'array' else b'\x01'
    for position in range(len(good)):
        bad = good[:position] + bad_byte + good[position + 1:]
        crafted = as_bool.replace(_latin1(good), _latin1(bad))
        assert crafted != as_bool
        with pytest.raises(UnsafeCheckpointError,
                           match='booleans other than 0 and 1'):
            load_checkpoint_file(legacy_checkpoint(crafted))


def _latin1(data: bytes) -> bytes:
    # Protocol 2 writes bytes as _codecs.encode(<latin-1 text>, 'latin1').
    return unicode(data.decode('latin1'))


# --------------------------------------------------------------------------
# Zip bombs
# --------------------------------------------------------------------------
def deflated_zip(path: str, members: dict) -> str:
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_zip_limit_counts_uncompressed_bytes(tmp_path, monkeypatch):
    """A 20 kB file declaring 20 MB: refused from the zip's index, before
    torch reads (and inflates) anything."""
    path = deflated_zip(
        str(tmp_path / 'bomb.pth'), {
            'archive/data.pkl': pickle.dumps({}, protocol=2),
            'archive/data/0': bytes(20 << 20)
        })
    assert osp.getsize(path) < 100_000
    monkeypatch.setenv(MAX_BYTES_ENV, str(1 << 20))

    def no_load(*args, **kwargs):
        raise AssertionError('torch.load reached')

    monkeypatch.setattr(torch, 'load', no_load)
    with pytest.raises(CheckpointFileError) as info:
        load_checkpoint_file(path)
    message = str(info.value)
    assert 'it is too large' in message and 'zip bomb' in message
    assert f'unpack to {(20 << 20) + len(pickle.dumps({}, protocol=2))}' \
        in message and MAX_BYTES_ENV in message


def test_zipped_download_not_inflated_in_memory(tmp_path, monkeypatch):
    """A cached zip of one member (torch.hub's zipped legacy checkpoint):
    a member of 30 MB of zeros is refused by its first bytes, without
    being inflated into memory; one over the limit by its index."""
    cache = tmp_path / 'hub' / 'checkpoints'
    cache.mkdir(parents=True)
    deflated_zip(str(cache / 'zeros.pth'), {'zeros.pth': bytes(30 << 20)})
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointFileError,
                           match='is not a PyTorch checkpoint'):
            safe_checkpoint.load_url(
                'https://example.org/zeros.pth', model_dir=str(cache))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, peak
    monkeypatch.setenv(MAX_BYTES_ENV, str(1 << 20))
    with pytest.raises(CheckpointFileError, match='unpacks to 31457280'):
        safe_checkpoint.load_url(
            'https://example.org/zeros.pth', model_dir=str(cache))
    assert sorted(p.name for p in cache.iterdir()) == ['zeros.pth']


# --------------------------------------------------------------------------
# A download that stalls
# --------------------------------------------------------------------------
class StallingHandler(http.server.BaseHTTPRequestHandler):
    """Sends the headers of a 1 MB file, then nothing until released."""

    release: threading.Event

    def do_GET(self):
        self.send_response(200)
        self.send_header('Content-Length', str(1 << 20))
        self.end_headers()
        self.wfile.write(b'PK')
        self.wfile.flush()
        self.release.wait(timeout=20)

    def log_message(self, *args):
        pass


@pytest.fixture
def stalling_server(monkeypatch):
    for name in ('no_proxy', 'NO_PROXY'):
        monkeypatch.setenv(name, '127.0.0.1,localhost')
    release = threading.Event()
    handler = type('Handler', (StallingHandler, ), dict(release=release))
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{httpd.server_address[1]}'
    release.set()
    httpd.shutdown()
    httpd.server_close()


def test_stalled_download_fails_within_its_time_limit(stalling_server,
                                                      tmp_path, monkeypatch):
    monkeypatch.setenv(DOWNLOAD_TIMEOUT_ENV, '0.5')
    url = f'{stalling_server}/tdn.pth'
    began = time.monotonic()
    with pytest.raises(CheckpointFileError) as info:
        safe_checkpoint.load_url(url, model_dir=str(tmp_path))
    assert time.monotonic() - began < 5
    message = str(info.value)
    assert message.startswith(f'Cannot download the checkpoint {url}')
    assert 'sent nothing for 0.5 s' in message
    assert DOWNLOAD_TIMEOUT_ENV in message
    assert list(tmp_path.iterdir()) == []  # no partial file left


def test_download_timeout_setting_checked(monkeypatch):
    monkeypatch.setenv(DOWNLOAD_TIMEOUT_ENV, '0')
    with pytest.raises(ValueError, match=DOWNLOAD_TIMEOUT_ENV):
        safe_checkpoint.download_timeout()
    monkeypatch.setenv(DOWNLOAD_TIMEOUT_ENV, '2.5')
    assert safe_checkpoint.download_timeout() == 2.5


def test_legacy_header_helper_matches_torch():
    """The crafted files above use torch's own legacy layout."""
    buffer = io.BytesIO()
    torch.save({'a': 1}, buffer, _use_new_zipfile_serialization=False)
    assert load_checkpoint_file(buffer.getvalue()) == {'a': 1}
    assert load_checkpoint_file(
        legacy_checkpoint(pickle.dumps({'a': 1}, protocol=2))) == {'a': 1}
    assert sys.byteorder == 'little'
