"""Replication of the paper's Fig. 2: its cells as data, and a study put beside them.

- ``paper``: the three panels (``PANELS``: fig2-wrn, fig2-vgg, fig2-rn20), their digitized cells
  (``data/paper_fig2_digitized.csv``, read from the figure of arXiv:1910.04952 v4; see its README) and
  the paper's claims.
- ``compare``: our cells beside the paper's, and the paper's claim recomputed per seed, with a verdict.
- ``report``: ``replication_report`` assembles one typed ``ReplicationReport``.
- ``render``: the report in words and as a figure.
- ``sources``: trials from the service's export or a local run; the report's files.

``demonlab replicate STUDY --paper fig2-wrn`` is the command line over these (``service.cli``).
"""

from __future__ import annotations

from .paper import PANELS, PanelKey, panel, paper_cells
from .render import report_text, write_figure
from .report import ReplicationReport, StudyInfo, replication_report
from .sources import from_export, from_files, write_report

__all__ = [
    "PANELS",
    "PanelKey",
    "ReplicationReport",
    "StudyInfo",
    "from_export",
    "from_files",
    "panel",
    "paper_cells",
    "replication_report",
    "report_text",
    "write_figure",
    "write_report",
]
