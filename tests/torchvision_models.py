"""``torchvision.models`` for the tests marked ``torchvision``.

The main CI venv (CPU torch 2.13) has no working torchvision: the tests
skip there.  The second CI stage (``.ci/run``, ``pytest -m torchvision``)
sets ``GLORE_PYG_REQUIRE_TORCHVISION=1``: a torchvision that does not load
fails the tests there instead of skipping them.
"""
import os

import pytest


def torchvision_models():
    """``torchvision.models``, or a skip (a failure where it is required)."""
    try:
        import torchvision.models as tvm
        tvm.resnet18(weights=None)  # its compiled operators load
    except Exception as e:  # not installed, or built for another torch
        if os.environ.get('GLORE_PYG_REQUIRE_TORCHVISION') == '1':
            pytest.fail(f'torchvision required but unusable: {e!r}')
        pytest.skip(f'torchvision unusable here: {e!r}')
    return tvm
