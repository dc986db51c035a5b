"""NAS benchmarks with ground truth: offline image data, the NB-201-style cell space, a
stand-alone-trained table, and the analog-nasbench CIFAR-10 table as a tabular objective.

Modules: :mod:`~nas.benchmarks.data`, :mod:`~nas.benchmarks.nb201`,
:mod:`~nas.benchmarks.ground_truth`, :mod:`~nas.benchmarks.analog_nasbench`.
"""
