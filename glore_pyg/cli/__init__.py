"""The ``glore-pyg`` console script: one command per job."""
from .main import main

__all__ = ['main']
