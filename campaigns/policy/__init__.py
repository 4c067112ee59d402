"""May we contact them now: the pure decision, its facts, oppositions, the calendar."""
