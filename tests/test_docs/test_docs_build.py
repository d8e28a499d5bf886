# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""The documentation site builds offline without a single warning (what
``make docs`` runs), with every page of the toctree."""
import os
import os.path as osp
import re
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DOCS = osp.join(ROOT, 'docs')
PAGES = ('index', 'get_started', 'own_dataset', 'models',
         'inference_and_visualization', 'long_video',
         'datasets', 'convert_tdn', 'multi_gpu', 'paper_tables',
         'benchmark', 'faq', 'api', 'contributing', 'dev/contracts')


@pytest.fixture(scope='module')
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp('docs')
    env = dict(os.environ, OMP_NUM_THREADS='1')
    result = subprocess.run(
        [sys.executable, '-m', 'sphinx', '-W', '--keep-going', '-b', 'html',
         '-d', str(out / 'doctrees'), DOCS, str(out / 'html')],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    return result, out / 'html'


def _text(html_dir, page):
    with open(html_dir / f'{page}.html', encoding='utf-8') as f:
        return re.sub(r'<[^>]+>', ' ', f.read())


def test_docs_build_without_warnings(built):
    result, html = built
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-3000:]
    assert 'build succeeded' in log
    sphinx_warnings = [line for line in log.splitlines()
                       if 'WARNING' in line or 'ERROR' in line]
    assert not sphinx_warnings, sphinx_warnings
    for page in PAGES:
        assert (html / f'{page}.html').is_file(), page


def test_faq_lists_every_stack_fix(built):
    from mmaction_tdx.compat import FIXES
    _, html = built
    faq = _text(html, 'faq')
    for name, module in FIXES.items():
        assert module.__name__ in faq, name


def test_api_page_documents_the_models(built):
    _, html = built
    api = _text(html, 'api')
    for name in ('ResNetTDN', 'ResNetTDRL', 'ProgressiveEnhancementModule',
                 'TemporalDiversityLoss', 'SegmentGradCAM',
                 'init_video_recognizer'):
        assert name in api, name
