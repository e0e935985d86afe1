"""glore_pyg.functional.checks: one convention for every argument check."""
import re

import numpy as np
import pytest
import torch

from glore_pyg.functional.checks import check_float, check_index, check_int


def test_check_int_accepts_ints_and_returns_python_ints():
    assert check_int(3, 'n') == 3
    for value in (np.int64(3), np.uint8(3), np.int32(3)):
        out = check_int(value, 'n', minimum=1, maximum=3)
        assert out == 3 and type(out) is int
    assert check_int(-5, 'n') == -5  # no bound, no limit
    assert check_int(0, 'n', minimum=0) == 0 and check_int(7, 'n',
                                                           maximum=7) == 7


@pytest.mark.parametrize('value, kwargs, error, message', [
    (0, dict(minimum=1), ValueError, "'n' must be an int >= 1, got 0"),
    (4, dict(maximum=3), ValueError, "'n' must be an int <= 3, got 4"),
    (9, dict(minimum=1, maximum=3), ValueError,
     "'n' must be an int in [1, 3], got 9"),
    (np.int64(-2), dict(minimum=0), ValueError,
     "'n' must be an int >= 0, got -2"),
    (2.0, dict(minimum=1), TypeError,
     "'n' must be an int >= 1, got float 2.0"),
    (True, dict(), TypeError, "'n' must be an int, got bool True"),
    ('3', dict(), TypeError, "'n' must be an int, got str '3'"),
    (None, dict(minimum=1), TypeError,
     "'n' must be an int >= 1, got NoneType None"),
    (torch.tensor(3), dict(), TypeError, "'n' must be an int, got Tensor "
     "tensor(3)"),
])
def test_check_int_errors(value, kwargs, error, message):
    with pytest.raises(error) as info:
        check_int(value, 'n', **kwargs)
    assert str(info.value) == message


def test_numpy_bools_are_not_ints():
    with pytest.raises(TypeError, match="^'n' must be an int, got bool"):
        check_int(np.bool_(True), 'n')


def test_long_values_are_cut_in_messages():
    with pytest.raises(TypeError) as info:
        check_int('x' * 500, 'n')
    assert len(str(info.value)) < 120 and str(info.value).endswith("...")


def test_check_float_accepts_numbers_and_returns_floats():
    for value in (1, 0.5, np.float32(0.5), np.int64(1)):
        out = check_float(value, 'x', low=0, high=1)
        assert type(out) is float and out == float(value)
    assert check_float(0, 'x', low=0) == 0.0  # closed by default
    assert check_float(-1e300, 'x') == -1e300


@pytest.mark.parametrize('value, kwargs, error, message', [
    (0, dict(low=0, low_open=True), ValueError,
     "'x' must be a finite number > 0, got 0.0"),
    (-0.5, dict(low=0), ValueError,
     "'x' must be a finite number >= 0, got -0.5"),
    (1.0, dict(high=1, high_open=True), ValueError,
     "'x' must be a finite number < 1, got 1.0"),
    (2, dict(high=1), ValueError, "'x' must be a finite number <= 1, got 2.0"),
    (1.0, dict(low=0, high=1, low_open=True, high_open=True), ValueError,
     "'x' must be a finite number in (0, 1), got 1.0"),
    (0.0, dict(low=0, high=1, high_open=True), ValueError,
     None),  # accepted: [0, 1)
    (float('nan'), dict(), ValueError, "'x' must be a finite number, got nan"),
    (float('inf'), dict(low=0), ValueError,
     "'x' must be a finite number >= 0, got inf"),
    (-float('inf'), dict(high=0), ValueError,
     "'x' must be a finite number <= 0, got -inf"),
    (True, dict(), TypeError, "'x' must be a finite number, got bool True"),
    ('0.5', dict(low=0, high=1), TypeError,
     "'x' must be a finite number in [0, 1], got str '0.5'"),
    (torch.tensor(0.5), dict(), TypeError,
     "'x' must be a finite number, got Tensor tensor(0.5000)"),
    (1j, dict(), TypeError, "'x' must be a finite number, got complex 1j"),
])
def test_check_float_errors(value, kwargs, error, message):
    if message is None:
        check_float(value, 'x', **kwargs)
        return
    with pytest.raises(error) as info:
        check_float(value, 'x', **kwargs)
    assert str(info.value) == message


def test_check_index():
    assert check_index(0, 3) == 0 and check_index(2, 3) == 2
    assert check_index(-1, 3) == 2 and check_index(-3, 3) == 0
    for index in (np.int64(1), torch.tensor(1)):
        out = check_index(index, 3)
        assert out == 1 and type(out) is int
    with pytest.raises(IndexError, match=re.escape(
            "'index' must be an int in [-3, 3) (a sequence of 3 items), "
            "got 3")):
        check_index(3, 3)
    with pytest.raises(IndexError, match='got -4$'):
        check_index(-4, 3)
    with pytest.raises(IndexError, match=re.escape("'i' must be an int in "
                                                   "[0, 0)")):
        check_index(0, 0, name='i')
    for bad in (1.0, True, '1', torch.tensor(1.0), None):
        with pytest.raises(TypeError, match=re.escape(
                "'index' must be an int in [-3, 3), got ")):
            check_index(bad, 3)


def test_check_ints():
    from glore_pyg.functional.checks import check_ints
    assert check_ints((2, np.int64(3)), 'dims', 1) == [2, 3]
    assert type(check_ints([np.int32(4)], 'dims')[0]) is int
    with pytest.raises(TypeError, match=r"^'dims' must be a non-empty "
                       r"sequence of ints >= 1 \(per kernel\), got int 4$"):
        check_ints(4, 'dims', 1, 'per kernel')
    with pytest.raises(TypeError, match=r"got str '12'$"):
        check_ints('12', 'dims')
    with pytest.raises(ValueError, match=r"^'dims' must be a non-empty "
                       r"sequence of ints, got \[\]$"):
        check_ints([], 'dims')
    with pytest.raises(ValueError, match=r"^'dims\[1\]' must be an int >= 1"
                       r", got 0$"):
        check_ints([3, 0], 'dims', 1)
    with pytest.raises(TypeError, match=r"^'dims\[0\]' must be an int, got "
                       r"bool True$"):
        check_ints([True], 'dims')
