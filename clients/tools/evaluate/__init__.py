"""``calmline eval``: measures the product's judgement on data, printed as tables."""
