# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Sphinx configuration: Markdown pages (MyST), API pages from the
docstrings (autodoc + napoleon), the furo theme. Builds offline: no
intersphinx, no remote assets. ``make docs`` runs it with ``-W``."""
import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))
sys.path.insert(0, ROOT)
# Our directives (docs/_ext): compat-fixes, for the FAQ.
sys.path.insert(0, os.path.join(os.path.dirname(__file__), '_ext'))

from mmaction_tdx.version import __version__  # noqa: E402

project = 'mmaction_tdx'
author = 'mmaction_tdx contributors'
copyright = '2024, mmaction_tdx contributors'
version = release = __version__

extensions = [
    'myst_parser',
    'sphinx.ext.autodoc',
    'sphinx.ext.napoleon',
    'sphinx.ext.viewcode',
    'compat_fixes',
]
source_suffix = {'.md': 'markdown', '.rst': 'restructuredtext'}
root_doc = 'index'
exclude_patterns = ['_build', '_ext', 'Thumbs.db', '.DS_Store']

# MyST: anchors for h1-h3 so that `[text](page.md#a-heading)` links
# resolve; fenced ```{directive} blocks; ::: colon fences.
myst_heading_anchors = 3
myst_enable_extensions = ['colon_fence', 'deflist']

# API pages: the members of the documented modules, in source order,
# without the inherited ones (MMAction2's own docstrings are not ours to
# render, and would not build warning-free).
autodoc_default_options = {
    'members': True,
    'member-order': 'bysource',
    'show-inheritance': True,
}
autodoc_typehints = 'none'  # the docstrings say the types and shapes
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# `Shape:` sections (tensor shapes) render as a plain titled block.
napoleon_custom_sections = ['Shape']

html_theme = 'furo'
html_title = f'mmaction_tdx {version}'
html_static_path = []
html_show_sourcelink = False
