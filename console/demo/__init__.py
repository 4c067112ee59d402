"""`relance demo`: the campaign played on synthetic data."""
