"""Use cases: one function per thing a person does, checked, applied and audited once."""
