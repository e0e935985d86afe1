"""README.md's install instructions install what its test command needs:
the editable install names the ``test`` extra, and pyproject.toml's ``test``
extra provides pytest."""
import re
from pathlib import Path

import pytest

try:
    import tomllib
except ImportError:  # Python < 3.11
    tomllib = pytest.importorskip('tomli')

ROOT = Path(__file__).resolve().parents[1]

# `pip install [options] -e <target>` where the target is the project
# directory, optionally quoted and with extras: -e . / -e ".[test]" /
# -e '.[test,sparse]' / -e .[test]
EDITABLE = re.compile(
    r"""pip3?\s+install\b[^\n#]*?(?:-e|--editable)\s+
        (?P<quote>["']?)\.(?:\[(?P<extras>[^\]]*)\])?(?P=quote)
        (?=\s|$)""", re.VERBOSE)


def editable_installs(text):
    """``(line, extras)`` of every editable install of the project."""
    found = []
    for line in text.splitlines():
        for m in EDITABLE.finditer(line):
            extras = {e.strip().lower() for e in
                      (m.group('extras') or '').split(',') if e.strip()}
            found.append((line.strip(), extras))
    return found


def requirement_name(requirement):
    """The normalised distribution name of a PEP 508 requirement."""
    name = re.match(r'\s*([A-Za-z0-9][A-Za-z0-9._-]*)', requirement).group(1)
    return re.sub(r'[-_.]+', '-', name).lower()


def test_parser():
    """The parser itself: it finds the forms a README uses."""
    text = '\n'.join([
        'pip install -e .                 # plain',
        'pip install -e ".[test]"',
        "python -m pip install -e '.[sparse, test]'",
        'pip install --no-build-isolation -e .[test]',
        'pip install torch-scatter',
        'pip install -e ./other',
    ])
    assert editable_installs(text) == [
        ('pip install -e .                 # plain', set()),
        ('pip install -e ".[test]"', {'test'}),
        ("python -m pip install -e '.[sparse, test]'", {'sparse', 'test'}),
        ('pip install --no-build-isolation -e .[test]', {'test'}),
    ]
    assert requirement_name('pytest>=7') == 'pytest'
    assert requirement_name('Py_Test [x] ; python_version>"3"') == 'py-test'


def test_readme_editable_install_includes_test_extra():
    readme = (ROOT / 'README.md').read_text(encoding='utf-8')
    assert 'python -m pytest' in readme  # the test command it documents
    installs = editable_installs(readme)
    assert installs, "README.md has no `pip install -e` line"
    with_test = [line for line, extras in installs if 'test' in extras]
    assert with_test, (
        "README.md's editable install does not install the 'test' extra "
        "that its test command needs (expected e.g. "
        "`pip install -e \".[test]\"`); found: "
        + '; '.join(line for line, _ in installs))


def test_pyproject_test_extra_lists_pytest():
    with open(ROOT / 'pyproject.toml', 'rb') as f:
        project = tomllib.load(f)['project']
    extras = project.get('optional-dependencies', {})
    assert 'test' in extras, list(extras)
    names = {requirement_name(r) for r in extras['test']}
    assert 'pytest' in names, extras['test']
