"""Bulk simulation: vectorized backtest kernels over many runs at once, on recorded spot history.

* :mod:`engine.sim.clock`, :mod:`engine.sim.deadline`, :mod:`engine.sim.deadline_policies`,
  :mod:`engine.sim.optimal`, :mod:`engine.sim.deadline_plan`, :mod:`engine.sim.risk_deadline`: the
  deadline-job workload (the "Can't Be Late" problem) and its policies.
* :mod:`engine.sim.fleet`: the fleet workload, driving the live engine's policies (:mod:`engine.policy`).
* :mod:`engine.sim.runs`: history -> runs; :mod:`engine.sim.report`: results -> JSON;
  :mod:`engine.sim.backtest`: what a worker runs on its shard.

Pure numpy: the Ray fan-out lives in :mod:`actors.simulation`.
"""
