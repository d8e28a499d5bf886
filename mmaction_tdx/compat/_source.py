# Copyright (c) mmaction_tdx contributors. All rights reserved.
"""Read an upstream method's source to tell whether a defect is there.

The compat fixes decide from upstream's code, not by building models at
import time: the source of one method is read (``inspect`` uses the module
file already on disk) and parsed, which costs well under a millisecond.
"""
import ast
import inspect
import textwrap
from typing import Callable, Optional


def function_node(func: Callable) -> Optional[ast.FunctionDef]:
    """The ``def`` node of ``func``, or None if its source is unavailable.

    Source can be missing for byte-code-only installs; the callers then
    assume the defect of the pinned release is present.
    """
    try:
        source = textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError):
        return None
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return node
    return None


def own_statements(node: ast.AST):
    """Every node inside ``node``, not descending into nested functions,
    lambdas or classes (their ``return`` is not the method's)."""
    for child in ast.iter_child_nodes(node):
        yield child
        if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                  ast.Lambda, ast.ClassDef)):
            yield from own_statements(child)


def is_self_attribute(node: ast.AST, name: str) -> bool:
    """Whether ``node`` is ``self.<name>``."""
    return (isinstance(node, ast.Attribute) and node.attr == name
            and isinstance(node.value, ast.Name) and node.value.id == 'self')
