# The two Quick start commands: `make demo` and `make test`. Each does its own setup.
.PHONY: setup demo test lint bench-tick

setup:
	./scripts/setup.sh

demo: setup
	uv run relance demo

test:
	./scripts/setup.sh --tests
	uv run ruff check .
	uv run mypy relance_fs targeting channels campaigns flows console
	uv run pytest -q

lint:
	uv run ruff check .
	uv run mypy relance_fs targeting channels campaigns flows console

bench-tick: setup
	uv run python bench/tick/run.py
