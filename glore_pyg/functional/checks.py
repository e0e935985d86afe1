"""The argument checks every part of the library uses, with one convention:

* a value of the wrong type raises :class:`TypeError`, a value out of range
  :class:`ValueError` (an index out of range :class:`IndexError`, as Python's
  sequences do);
* a bool is not an int; numpy integers are ints, numpy floats are numbers;
* the message names the argument in quotes, says what it must be and gives
  the value received, e.g. ``'num_points' must be an int >= 1, got 0`` or
  ``'k' must be an int >= 1, got float 2.0``.

Each check returns the value as a plain Python ``int`` / ``float``, so that
hyper-parameters stored from it print and serialise the same whatever the
caller passed.
"""
import math
import numbers
import operator
from typing import Any, List, Optional

import torch.fx

__all__ = ['check_int', 'check_ints', 'check_float', 'check_index',
           'is_symbolic']


def is_symbolic(x: Any) -> bool:
    """Whether ``x`` is a :class:`torch.fx.Proxy`: the module is being
    traced by :func:`torch.fx.symbolic_trace`, and checks that need values
    (shapes, dtypes, devices) are skipped; the traced graph checks nothing,
    like every FX graph."""
    return isinstance(x, torch.fx.Proxy)


def _got(value: Any) -> str:
    """The received value for a type error: its type and a short repr."""
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + '...'
    return f'{type(value).__name__} {text}'


def _int_range(minimum: Optional[int], maximum: Optional[int]) -> str:
    if minimum is not None and maximum is not None:
        return f' in [{minimum}, {maximum}]'
    if minimum is not None:
        return f' >= {minimum}'
    if maximum is not None:
        return f' <= {maximum}'
    return ''


def check_int(value: Any, name: str, minimum: Optional[int] = None,
              maximum: Optional[int] = None) -> int:
    r""":obj:`value` as an ``int`` in :math:`[\text{minimum},
    \text{maximum}]` (either bound may be :obj:`None`).

    Raises:
        TypeError: If :obj:`value` is not an integer (a bool is not).
        ValueError: If it is out of range.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"'{name}' must be an int"
                        f"{_int_range(minimum, maximum)}, got {_got(value)}")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None
                                                     and value > maximum):
        raise ValueError(f"'{name}' must be an int"
                         f"{_int_range(minimum, maximum)}, got {value}")
    return value



def check_ints(value: Any, name: str, minimum: Optional[int] = None,
               what: str = '') -> List[int]:
    r""":obj:`value`, a non-empty sequence (anything iterable but a string),
    as a list of ``int`` s :math:`\geq` :obj:`minimum`; entry :obj:`i` is
    checked as ``'name[i]'``.  :obj:`what` says what the entries are, for
    the message (e.g. ``'blocks per stage'``).

    Raises:
        TypeError: If :obj:`value` is not a sequence (an int, a string,
            :obj:`None`) or an entry is not an integer.
        ValueError: If it is empty or an entry is out of range.
    """
    must = (f"'{name}' must be a non-empty sequence of ints"
            f"{_int_range(minimum, None)}{f' ({what})' if what else ''}, "
            f"got ")
    entries = None
    if not isinstance(value, (str, bytes)):
        try:
            entries = list(value)
        except TypeError:  # an int, None, a 0-d tensor
            pass
    if entries is None:
        raise TypeError(must + _got(value))
    if not entries:
        raise ValueError(must + repr(value))
    return [check_int(v, f'{name}[{i}]', minimum)
            for i, v in enumerate(entries)]


def _float_range(low: Optional[float], high: Optional[float], low_open: bool,
                 high_open: bool) -> str:
    if low is not None and high is not None:
        return (f" in {'(' if low_open else '['}{low}, "
                f"{high}{')' if high_open else ']'}")
    if low is not None:
        return f" {'>' if low_open else '>='} {low}"
    if high is not None:
        return f" {'<' if high_open else '<='} {high}"
    return ''


def check_float(value: Any, name: str, low: Optional[float] = None,
                high: Optional[float] = None, low_open: bool = False,
                high_open: bool = False) -> float:
    r""":obj:`value` as a finite ``float`` in :math:`[\text{low},
    \text{high}]` (either bound may be :obj:`None`; :obj:`low_open` /
    :obj:`high_open` exclude the bound). Ints are numbers; NaN and
    infinities are always refused.

    Raises:
        TypeError: If :obj:`value` is not a real number (a bool is not).
        ValueError: If it is not finite or out of range.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"'{name}' must be a finite number"
                        f"{_float_range(low, high, low_open, high_open)}, "
                        f"got {_got(value)}")
    value = float(value)
    ok = math.isfinite(value)
    if low is not None:
        ok = ok and (value > low if low_open else value >= low)
    if high is not None:
        ok = ok and (value < high if high_open else value <= high)
    if not ok:
        raise ValueError(f"'{name}' must be a finite number"
                         f"{_float_range(low, high, low_open, high_open)}, "
                         f"got {value}")
    return value


def check_index(index: Any, length: int, name: str = 'index') -> int:
    r""":obj:`index` into a sequence of :obj:`length` items, negative
    indices counting from the end, as a non-negative ``int``. An index is
    what :func:`operator.index` accepts (Python and numpy ints, integer
    tensors of one element), a bool excepted.

    Raises:
        TypeError: If :obj:`index` is not an integer.
        IndexError: If it is not in :math:`[-\text{length},
            \text{length})`: the error Python's sequences raise, which also
            ends the iteration of a class that defines only
            ``__getitem__``.
    """
    try:
        if isinstance(index, bool):
            raise TypeError
        i = operator.index(index)
    except TypeError:
        raise TypeError(f"'{name}' must be an int in [{-length}, {length}), "
                        f"got {_got(index)}") from None
    if not -length <= i < length:
        raise IndexError(f"'{name}' must be an int in [{-length}, {length}) "
                         f"(a sequence of {length} items), got {i}")
    return i + length if i < 0 else i
