"""Online learning for the decision engine: interruption risk, price forecasts, their metrics.

Everything here is pure and deterministic given a seed: time comes in as ``now_s``, labels mature only
once their horizon has passed (:mod:`engine.learning.labels`), and every model pickles (``snapshot``).
One small module per job; :class:`engine.learning.risk.RiskModel` and
:class:`engine.learning.price.PriceForecaster` are the two objects the rest of the engine calls.
"""
