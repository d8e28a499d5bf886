# Copyright (c) mmaction_tdx contributors. All rights reserved.
import importlib.util
import os
import os.path as osp
import subprocess
import sys
import textwrap

import pytest

# Repairs the stack (mmaction_tdx.compat) before any test imports
# mmaction.models.
import mmaction_tdx  # noqa: F401

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHARED = osp.join(osp.dirname(REPO_ROOT), 'shared')


def legacy_checkpoint(raw_object_pickle: bytes) -> bytes:
    """A checkpoint in torch's legacy (non-zip) format around a crafted
    pickle: magic number, protocol, system info, the object, its storage
    keys (none)."""
    import pickle

    import torch
    header = b''.join(
        pickle.dumps(item, protocol=2)
        for item in (torch.serialization.MAGIC_NUMBER,
                     torch.serialization.PROTOCOL_VERSION,
                     dict(protocol_version=torch.serialization.
                          PROTOCOL_VERSION, little_endian=True,
                          type_sizes=dict(short=2, int=4, long=4))))
    return header + raw_object_pickle + pickle.dumps([], protocol=2)


def load_tool(path: str):
    """Import a developer tool (``tools/...py``, not in the installed
    library) as a module; one module object per path for the session."""
    name = 'tool_' + osp.splitext(path)[0].replace('/', '_')
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            name, osp.join(REPO_ROOT, path))
        module = importlib.util.module_from_spec(spec)
        # Registered before running: dataclasses look their module up.
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def run_python(code: str, env: dict = None, timeout: int = 300,
               cwd: str = None) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (no state shared with the test)."""
    full_env = dict(os.environ)
    full_env.pop('MMACTION_TDX_SKIP_COMPAT', None)
    full_env.setdefault('OMP_NUM_THREADS', '1')
    full_env.update(env or {})
    return subprocess.run([sys.executable, '-c',
                           textwrap.dedent(code)],
                          capture_output=True,
                          text=True,
                          env=full_env,
                          cwd=cwd or REPO_ROOT,
                          timeout=timeout)


@pytest.fixture
def python_runner():
    return run_python


@pytest.fixture(scope='session')
def shared_dir():
    if not osp.isdir(SHARED):
        pytest.skip(f'{SHARED} is not present (CI puts ../shared beside the '
                    'clone)')
    return SHARED


@pytest.fixture
def recording_compile_backend():
    """A ``torch.compile`` backend name and the list it fills: for every
    graph dynamo hands over, the symbolic sizes among its inputs (SymInt
    inputs and SymInt sizes of tensor inputs). Compiles with
    ``aot_eager`` (dynamo and AOTAutograd as inductor receives them,
    without code generation). Dynamo's caches are reset before and after.
    """
    import uuid

    import torch
    import torch._dynamo

    # A name per use: dynamo refuses to register a name twice.
    name = f'mmaction_tdx_test_recording_{uuid.uuid4().hex}'
    graphs = []

    def backend(gm, example_inputs):
        symbolic = []
        for node in gm.graph.find_nodes(op='placeholder'):
            value = node.meta.get('example_value')
            sizes = value.shape if isinstance(value, torch.Tensor) else [
                value]
            symbolic.extend(s for s in sizes if isinstance(s, torch.SymInt))
        graphs.append(symbolic)
        return torch._dynamo.lookup_backend('aot_eager')(gm, example_inputs)

    torch._dynamo.register_backend(backend, name=name)
    torch._dynamo.reset()
    yield name, graphs
    torch._dynamo.reset()
