"""targeting package."""
