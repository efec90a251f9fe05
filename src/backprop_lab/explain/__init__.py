"""``bplab-explain`` around the pure computation of ``backprop_lab.core.explain``: where the
network comes from (``sources``: the article, a config, a recorded run's ``run``) and how the
walk-through is shown (``view``: blocks rendered as rich tables, Markdown or JSON)."""
