"""Who is in, what is due, what goes out: admission, planning, tick, dispatch, review."""
