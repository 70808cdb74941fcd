"""PNG figures for stage outputs: headless matplotlib, written atomically like every other artifact."""
from __future__ import annotations

from pathlib import Path

from pipeline.utils.io import atomic_open


def figure(figsize: tuple[float, float]):
    """-> (fig, ax) on the Agg backend (no display on CI or servers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=figsize)


def save(fig, path: str | Path, dpi: int = 100) -> Path:
    """tight_layout, write the PNG through a temp file renamed into place, and free the figure."""
    import matplotlib.pyplot as plt

    path = Path(path)
    fig.tight_layout()
    with atomic_open(path, "wb", encoding=None) as fh:
        fig.savefig(fh, format="png", dpi=dpi)
    plt.close(fig)
    return path
