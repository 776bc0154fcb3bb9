"""Metrics that explain a time: peak memory, FLOPs, the machine's measured peaks, compile cost.

* :mod:`lenet.metrics.memory`: peak live tensor bytes of a phase (CUDA allocator stats; CPU profiler events);
* :mod:`lenet.metrics.flops`: FLOPs by FlopCounterMode, the ops it does not count, bytes per op;
* :mod:`lenet.metrics.peaks`: matmul GFLOP/s and STREAM bandwidth, measured once per machine and cached;
* :mod:`lenet.metrics.compile_cost`: cold and warm compiles in new processes, break-even steps;
* :mod:`lenet.metrics.measure`: the untimed pass the bench fixture runs after the timed rounds;
* :mod:`lenet.metrics.run_end`: what the run adds at its end (% of peak, compile cost, break-even).

How each is measured, and what it cannot see: docs/metrics.md.
"""
