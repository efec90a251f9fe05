"""``bplab-report``: a research report per experiment, rebuilt from the MLflow store alone.

For each experiment the report uses the most recent top-level run (a multirun's parent, or a
single or grid run without a parent) and every run below it, reads their artifacts
(``config.yaml``, ``dataset.npz``, ``history.csv``, ``weights.json``/``weights.npz``,
``grid.npz``) and writes

* ``<out>/<experiment>/report/report.md`` with its figures in ``report/figures/*.png``;
* ``<out>/<experiment>/report/report.html``, self-contained (figures as ``data:`` URIs, inline
  CSS, no scripts), with every value from MLflow HTML-escaped;
* ``<out>/index.md`` and ``<out>/index.html`` linking every experiment's report.

Every number is computed from the runs, and the same runs give the same bytes: everything is
sorted, floats have fixed formats, and the figures carry no timestamps (see ``plots``). Only
run ids and start times tie a report to one particular set of runs. What a study wants said
about itself (what a job is called, which finding heads the index, its place there) comes from
the ``report:`` block of its runs' configs, not from code.

Modules, in the order the data flows: :mod:`.store` selects the runs, :mod:`.artifacts` reads
their artifacts as untrusted data, :mod:`.jobs` checks them against each other, :mod:`.labels`
names the jobs of a multirun; :mod:`.findings`, :mod:`.tables`, :mod:`.figures` and
:mod:`.worked_example` turn them into :mod:`.blocks`, which :mod:`.build` assembles into one
experiment's report and :mod:`.index` lists. :mod:`.formats` holds the number formats. The
command line is :mod:`backprop_lab.cli.report`.
"""
