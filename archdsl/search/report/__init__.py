"""What a person reads of a study: the progress line (:mod:`.progress`), ``archdsl status`` (:mod:`.status`),
the HTML report (:mod:`.html`), the ranking of named choices (:mod:`.ranking`) and short parameter labels
(:mod:`.labels`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from archdsl.lazy import exported, lazy_exports

_EXPORTS = {
    "archdsl.search.report.html": ("components_table", "importances", "tradeoff_table", "write_report"),
    "archdsl.search.report.labels": ("short_labels",),
    "archdsl.search.report.progress": ("Progress", "clock", "say_resuming"),
    "archdsl.search.report.ranking": ("ranking_table",),
    "archdsl.search.report.status": ("study_status",),
}
__all__ = exported(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from archdsl.search.report.html import components_table, importances, tradeoff_table, write_report
    from archdsl.search.report.labels import short_labels
    from archdsl.search.report.progress import Progress, clock, say_resuming
    from archdsl.search.report.ranking import ranking_table
    from archdsl.search.report.status import study_status
