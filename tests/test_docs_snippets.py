"""The tutorials' code runs as written: every ```python block of a page,
in order, in one namespace (as a reader pasting them would)."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = ['docs/tutorials/cnn_feature_maps.md']


def blocks(page: str):
    text = (ROOT / page).read_text()
    return re.findall(r'```python\n(.*?)```', text, flags=re.S)


@pytest.mark.slow  # 10.5 s on 2 CPU cores
@pytest.mark.parametrize('page', PAGES)
def test_tutorial_code_runs(page, capsys):
    code = blocks(page)
    assert len(code) >= 5
    namespace = {}
    for i, block in enumerate(code):
        exec(compile(block, f'{page}[block {i}]', 'exec'), namespace)
    out = capsys.readouterr().out
    if page.endswith('cnn_feature_maps.md'):
        assert "['layer3.1', 'layer3.3', 'layer3.5']" in out
        # the overhead the page quotes
        assert '| layer3.1 | GloRe2d | 1024 | 1.641M | 0.8179 |' in out
        assert '| network without units | | | 23.529M | 8.1743 |' in out
