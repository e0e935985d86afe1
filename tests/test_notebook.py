"""examples/gnn_vs_latentgnn_memory.ipynb runs clean on tiny sizes: every
cell, its figures, and its own consistency checks (LatentGNN below the
dense GNN at the largest common N, memory slopes near 2 and 1, the
low-rank identity A X = message passing)."""
from pathlib import Path

import pytest

nbformat = pytest.importorskip('nbformat')
nbclient = pytest.importorskip('nbclient')
pytest.importorskip('matplotlib')
pytest.importorskip('ipykernel')

EXAMPLES = Path(__file__).resolve().parents[1] / 'examples'


@pytest.mark.slow  # 106 s on 2 CPU cores
def test_memory_notebook_small(monkeypatch):
    monkeypatch.setenv('GLORE_PYG_NOTEBOOK_SMALL', '1')
    monkeypatch.setenv('MPLBACKEND', 'module://matplotlib_inline.backend_inline')
    nb = nbformat.read(EXAMPLES / 'gnn_vs_latentgnn_memory.ipynb', as_version=4)
    nbclient.NotebookClient(nb, timeout=600, kernel_name='python3',
                            resources={'metadata': {'path': str(EXAMPLES)}}
                            ).execute()
    outputs = [o for c in nb.cells if c.cell_type == 'code'
               for o in c.get('outputs', [])]
    assert not [o for o in outputs if o.output_type == 'error']
    figures = [o for o in outputs if 'image/png' in o.get('data', {})]
    assert len(figures) == 3
    text = ''.join(o.get('text', '') for o in outputs)
    assert 'small sizes' in text
    assert 'max |A X_v - unit|' in text
    assert text.count('largest common N') == 2
    assert 'dense GNN (NonLocalConv) largest N reached' in text
