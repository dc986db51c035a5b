"""NAS benchmarks with ground truth: offline image data, the NB-201-style cell space, a
stand-alone-trained table, the analog-nasbench CIFAR-10 table as a tabular objective, the
NAS-Bench-Graph space and the digits case study.

Modules: :mod:`~nas.benchmarks.data`, :mod:`~nas.benchmarks.nb201`,
:mod:`~nas.benchmarks.ground_truth`, :mod:`~nas.benchmarks.analog_nasbench`,
:mod:`~nas.benchmarks.nas_bench_graph`, :mod:`~nas.benchmarks.digits`.
"""
