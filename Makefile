.PHONY: setup demo test bench
setup:
	scripts/setup.sh
demo:
	scripts/demo.sh
test:
	scripts/test.sh
bench:
	scripts/setup.sh && .venv/bin/etle bench ../shared/data/videos
