"""Saved runs and traces -> statistics, verdicts, tables and plots. Reads files; writes none but the report.

Reading files: ``load`` (saved runs -> one DataFrame), ``trace_load`` (trace folders -> Trace),
``sides`` (saved runs -> one side of a comparison), ``noise`` (a baseline's noise.json).
Numbers: ``stats`` (pure statistics), ``summary`` (rows -> one row per variant),
``compare`` (verdicts and the gate's exit status), ``stability`` (flagged runs left out of speedups
and verdicts), ``operators`` (operator tables, diffs, one step's timeline).
Presentation: ``formatting`` (escaping, inline markup, tables, numbers), ``blocks`` (the one renderer:
blocks -> Markdown or HTML), ``tables``, ``compare_render`` and ``trace_tables`` (each section as blocks),
``plots`` (Figures), ``metric_tables`` and ``metric_plots`` (the metrics section, the at-a-glance summary,
rooflines and memory plots), ``report`` (everything in memory, then one atomic write).
"""
