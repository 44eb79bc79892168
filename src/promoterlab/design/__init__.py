"""Design promoters with a trained run, and choose which sequences to measure next.

- :mod:`~promoterlab.design.constraints`: the design space and a lab's constraints;
- :mod:`~promoterlab.design.scoring`: a run's models as the oracle (mean, sd, gradient, embedding);
- :mod:`~promoterlab.design.optimize`: greedy and evolutionary search toward a goal;
- :mod:`~promoterlab.design.select`: active-learning strategies over a pool of candidates;
- :mod:`~promoterlab.design.files`: the drivers of ``promoterlab design`` and ``promoterlab select``.
"""
