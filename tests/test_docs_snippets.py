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
        assert '| layer3.1 | GloRe2d | 1024 | 1.641M | 0.4089 |' in out
        assert '| network without units | | | 23.529M | 4.0872 |' in out


# -- the documented commands parse as written --------------------------------
COMMAND_PAGES = ['README.md', 'docs/getting_started.md', 'docs/training.md',
                 'docs/segmentation.md', 'docs/classification.md']


def fit_commands():
    """``(page, argv)`` of every ``glore-pyg {segment,classify} fit`` line
    in a ```bash block (continuation lines joined, comments and output
    redirections dropped)."""
    import shlex
    found = []
    for page in COMMAND_PAGES:
        text = (ROOT / page).read_text()
        for block in re.findall(r'```bash\n(.*?)```', text, flags=re.S):
            for line in block.replace('\\\n', ' ').splitlines():
                argv = shlex.split(line, comments=True)
                if argv[:1] != ['glore-pyg'] or argv[2:3] != ['fit']:
                    continue
                if '>' in argv:
                    argv = argv[:argv.index('>')]
                found.append((page, argv[1:]))
    return found


def print_config(argv, capsys):
    """The config ``glore-pyg ARGV --print_config`` prints, as a dict."""
    import yaml

    from glore_pyg.apps.cli import main
    capsys.readouterr()
    try:
        main([*argv, '--print_config'])
    except SystemExit as e:
        assert not e.code, (argv, capsys.readouterr().err[-2000:])
    return yaml.safe_load(capsys.readouterr().out)


@pytest.mark.slow  # a LightningCLI parser per command
def test_documented_fit_commands_parse(capsys, tmp_path):
    pytest.importorskip('lightning')
    commands = fit_commands()
    assert len(commands) >= 10
    own = tmp_path / 'my.yaml'
    own.write_text('trainer: {max_epochs: 3}\n')
    for page, argv in commands:
        # a YAML file of the reader's own: one that exists
        argv = [str(own) if a.endswith('.yaml') else a for a in argv]
        config = print_config(argv, capsys)
        assert config['trainer']['max_epochs'] >= 1, (page, argv)
        units = dict(zip(argv, argv[1:])).get('--model.units')
        if units is not None:  # the mapping arrived as a mapping
            assert isinstance(config['model']['units'], dict) and \
                config['model']['units'], (page, argv)


@pytest.mark.slow
def test_training_page_yaml_is_a_config(capsys, tmp_path):
    """The partial YAML of docs/training.md, on top of the default preset."""
    pytest.importorskip('lightning')
    text = (ROOT / 'docs/training.md').read_text()
    block = next(b for b in re.findall(r'```yaml\n(.*?)```', text, flags=re.S)
                 if 'class_path' in b)
    path = tmp_path / 'long.yaml'
    path.write_text(block)
    config = print_config(['classify', 'fit', '--config', str(path)], capsys)
    assert config['trainer']['max_epochs'] == 30
    assert config['model']['units'] == {'layer3': 'glore'}
    assert config['model']['optimizer']['class_path'] == 'torch.optim.AdamW'
    assert config['model']['lr_scheduler']['init_args']['T_max'] == 30
    assert config['data']['name'] == 'digits'  # the rest: the preset's
