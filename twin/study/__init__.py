"""Architecture what-if studies: many runs of the twin crossed over designs and policies.

The parts are kept apart: `spec` (the study file and its expansion into runs), `lifecycle`
(policies applied to a scenario as data), `executor` (serial, LocalCluster or an external
Dask cluster; keyed, resumable), `task` (one run on a worker), `metrics` (per-run
architecture metrics), `design` (static analysis of a design with networkx), `stats` and
`report` (the HTML report), and `study` (putting them together).
"""

from __future__ import annotations
