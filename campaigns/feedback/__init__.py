"""What providers and the print house report back: e-mail events, reads, returns."""
