"""Sphinx configuration of the glore-pyg documentation site.

Build (from the repository root; warnings are errors, as in CI)::

    pip install -e ".[docs]"
    python -m sphinx -W --keep-going -b html docs docs/_build/html

Pages are MyST markdown (the existing ``docs/*.md`` pages are pages of the
site in place), the API reference is reStructuredText generated from the
docstrings by autodoc / autosummary, and the notebook
``examples/gnn_vs_latentgnn_memory.ipynb`` is rendered by myst-nb with its
stored outputs (never executed: ``nb_execution_mode = "off"``).
"""
import importlib
import inspect
import os
import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # the package, also without an install

import glore_pyg  # noqa: E402

# -- project -----------------------------------------------------------------
project = 'glore-pyg'
author = 'glore-pyg contributors'
copyright = '2026, glore-pyg contributors'
release = glore_pyg.__version__
version = '.'.join(release.split('.')[:2])

# -- extensions ---------------------------------------------------------------
extensions = [
    'sphinx.ext.autodoc',
    'sphinx.ext.autosummary',
    'sphinx.ext.napoleon',
    'sphinx.ext.mathjax',
    'sphinx.ext.viewcode',
    'myst_nb',  # MyST markdown (.md) and notebooks (.ipynb)
]

source_suffix = {
    '.rst': 'restructuredtext',
    '.md': 'myst-nb',
    '.ipynb': 'myst-nb',
}
root_doc = 'index'
exclude_patterns = ['_build', 'Thumbs.db', '.DS_Store',
                    '**/.ipynb_checkpoints']

# -- autodoc / napoleon (PyG's style: Args, Shapes, Returns, Raises) ----------
autosummary_generate = False  # tables only; the entries are on the pages
autodoc_member_order = 'bysource'
autodoc_typehints = 'description'  # types of the signature go to the Args list
autodoc_typehints_description_target = 'documented'
autodoc_class_signature = 'mixed'
autodoc_inherit_docstrings = False  # never torch.nn.Module's own docstrings
autodoc_default_options = {
    'members': True,
    'show-inheritance': True,
    'exclude-members': '__init__, __new__',
}
autodoc_preserve_defaults = True
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True  # NamedTuple "Attributes:" as fields, not duplicates
napoleon_custom_sections = ['Shapes']  # PyG's section
add_module_names = False
python_display_short_literal_types = True

# Nothing is mocked: the docs extra installs Lightning, torchmetrics and
# scipy, so the training and metrics pages are autodoc'd from the real
# classes; pyvista (frog data set) and torch-sparse are imported lazily.

# -- MyST / myst-nb -----------------------------------------------------------
myst_enable_extensions = [
    'colon_fence',
    'dollarmath',
    'deflist',
]
myst_heading_anchors = 3
nb_execution_mode = 'off'  # render the stored outputs, never run a notebook
nb_merge_streams = True

# -- HTML ---------------------------------------------------------------------
html_theme = 'furo'
html_title = f'glore-pyg {release}'
html_static_path = ['_static']
html_css_files = ['custom.css']
html_theme_options = {
    'source_repository': 'https://github.com/glore-pyg/glore-pyg',
    'source_branch': 'main',
    'source_directory': 'docs/',
}

# -- the notebook (examples/ is outside the source directory) -----------------
# Copied at every build into docs/notebooks/ (in .gitignore), so the toctree
# entry "notebooks/gnn_vs_latentgnn_memory" always resolves: to the notebook
# with its stored outputs once it exists, to a short placeholder page before.
NOTEBOOKS = {
    'gnn_vs_latentgnn_memory': 'GNN vs LatentGNN: memory',
}
_generated = DOCS / 'notebooks'
shutil.rmtree(_generated, ignore_errors=True)
_generated.mkdir()
for _name, _title in NOTEBOOKS.items():
    _source = ROOT / 'examples' / f'{_name}.ipynb'
    if _source.is_file():
        shutil.copy2(_source, _generated / _source.name)
    else:
        (_generated / f'{_name}.md').write_text(
            f'# {_title}\n\n'
            f'The notebook `examples/{_name}.ipynb` is not in this '
            f'checkout yet; once it is committed, this page shows it with '
            f'its stored outputs (it is not executed by the build).\n')


# -- completeness: every public name of the documented modules has an entry ---
# Module -> its public names: ``__all__``, or (modules without one) the
# classes and functions defined there whose names do not start with "_".
API_MODULES = [
    'glore_pyg.nn',
    'glore_pyg.functional',
    'glore_pyg.interop',
    'glore_pyg.ops',
    'glore_pyg.viz',
    'glore_pyg.apps.base',
    'glore_pyg.apps.segmentation.task',
    'glore_pyg.apps.segmentation.pointnet2',
    'glore_pyg.apps.segmentation.datasets',
    'glore_pyg.apps.segmentation.metrics',
    'glore_pyg.apps.segmentation.pictures',
    'glore_pyg.apps.classification.task',
    'glore_pyg.apps.classification.insert',
    'glore_pyg.apps.classification.resnet',
    'glore_pyg.apps.classification.datasets',
    'glore_pyg.apps.classification.pictures',
    'glore_pyg.apps.cli',
]


def public_names(modname):
    module = importlib.import_module(modname)
    names = getattr(module, '__all__', None)
    if names is not None:
        return list(names)
    return [name for name, obj in vars(module).items()
            if not name.startswith('_')
            and (inspect.isclass(obj) or inspect.isfunction(obj))
            and getattr(obj, '__module__', None) == modname]


def check_api_complete(app, env):
    from sphinx.util import logging
    logger = logging.getLogger('glore_pyg.docs')
    documented = set(env.domains['py'].objects)
    for modname in API_MODULES:
        for name in public_names(modname):
            if f'{modname}.{name}' not in documented:
                logger.warning(
                    f'{modname}.{name} is public but not in the API '
                    f'reference (docs/api/): add an entry for it')


# -- ``.. command-help:: segment fit``: the script's --help --------------------
#: the sections of a LightningCLI job's --help left off the page: the usage
#: block (every trainer flag), the default config file (a path on the build
#: machine), Lightning's Trainer arguments and the job method's own
#: arguments (``--ckpt_path``, ``--weights_only``)
HELP_SECTIONS_LEFT_OUT = ('usage:', 'default config file locations',
                          'Customize every aspect of training')


def command_help(arguments):
    """The ``--help`` text of ``glore-pyg ARGS...`` (no arguments: the
    script's usage).  For ``fit`` / ``validate`` / ``test`` / ``predict``
    (LightningCLI) the options of the run, the model and the data, and the
    links between them; the Trainer's ``--trainer.*`` options are
    Lightning's own and left out."""
    import contextlib
    import io

    from glore_pyg.apps.cli import LIGHTNING_JOBS, USAGE, main
    if not arguments:
        return USAGE.rstrip()
    columns = os.environ.get('COLUMNS')
    os.environ['COLUMNS'] = '80'  # argparse wraps to the terminal
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            main([*arguments, '--help'])
    except SystemExit:
        pass
    finally:
        if columns is None:
            del os.environ['COLUMNS']
        else:
            os.environ['COLUMNS'] = columns
    text = out.getvalue().rstrip()
    if len(arguments) < 2 or arguments[1] not in LIGHTNING_JOBS:
        return text
    # LightningCLI: sections start at a line that is not indented
    sections, kept = [], []
    for line in text.splitlines():
        if line and not line[0].isspace():
            sections.append([line])
        elif sections:
            sections[-1].append(line)
    for section in sections:
        head = section[0]
        if head.startswith(HELP_SECTIONS_LEFT_OUT):
            continue
        if len(section) > 1 and any(
                line.lstrip().startswith(('--ckpt_path', '--weights_only'))
                for line in section):
            continue  # the job method's arguments (Lightning's own)
        if not any(line.strip() for line in section[1:]):
            continue  # the job's one-line description
        kept.append('\n'.join(section).rstrip())
    return '\n\n'.join(kept)


def command_help_directive():
    from docutils import nodes
    from sphinx.util.docutils import SphinxDirective

    class CommandHelp(SphinxDirective):
        """The ``--help`` text of ``glore-pyg ARGS...``, from the parsers
        themselves (so the page cannot drift from the command)."""
        optional_arguments = 8

        def run(self):
            text = command_help(self.arguments)
            node = nodes.literal_block(text, text)
            node['language'] = 'text'
            return [node]

    return CommandHelp


def setup(app):
    app.connect('env-check-consistency', check_api_complete)
    app.add_directive('command-help', command_help_directive())
