# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""The ``compat-fixes`` directive: one entry per fix in
``mmaction_tdx.compat.FIXES``, made of the fix module's docstring, so the
FAQ lists every stack defect the package works around, also the ones
added after the page was written.

The docstrings are reStructuredText: in a Markdown (MyST) page, use the
directive inside an ``{eval-rst}`` block.
"""
import inspect

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective


class CompatFixes(SphinxDirective):
    """Render each fix as a rubric (its docstring's first line), its
    name, and the rest of its docstring."""

    has_content = False

    def run(self):
        from mmaction_tdx.compat import FIXES
        lines = []
        for name, module in FIXES.items():
            doc = inspect.getdoc(module) or module.__name__
            title, _, body = doc.partition('\n')
            lines += [
                f'.. rubric:: {title.strip()}', '',
                f'Fix ``{name}`` (module :mod:`{module.__name__}`).', '',
                *body.strip().splitlines(), ''
            ]
        container = nodes.container()
        self.state.nested_parse(
            StringList(lines, source='mmaction_tdx.compat'),
            self.content_offset, container)
        return container.children


def setup(app):
    app.add_directive('compat-fixes', CompatFixes)
    return dict(parallel_read_safe=True, parallel_write_safe=True)
