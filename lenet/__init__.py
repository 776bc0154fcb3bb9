"""lenet-bench: LeNet-5 and the variants it is measured in.

Data flows one way: ``lenet`` (model, variants, workloads, measurement helpers)
-> ``bench/`` (pytest-benchmark suites) -> ``results/`` (saved runs)
-> ``lenet.analysis`` (load, statistics, tables, plots) -> ``scripts/``.
"""

__version__ = "0.1.0"
