"""Program metrics over a period: the practice dashboard's figures and ``bhi-fhir report``.

``episode`` reads one patient's program events from the record, ``program`` computes each
metric (with its definition and source) from the episodes, ``figures`` runs both and writes
the files; all three are pure. ``cli`` is the ``report`` command.
"""

from bhi_fhir.metrics.figures import Figures, figures, parse_period
from bhi_fhir.metrics.program import Metric

__all__ = ["Figures", "Metric", "figures", "parse_period"]
