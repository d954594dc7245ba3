# Thin aliases for tasks.py, which does the work with nothing but Python (also on Windows).
.PHONY: lab fresh test test-fast release bench lint
lab:
	python3 tasks.py lab
# make fresh CHAPTER=02_backprop
fresh:
	python3 tasks.py fresh $(CHAPTER)
test:
	python3 tasks.py test
test-fast:
	python3 tasks.py test --fast
release:
	python3 tasks.py release
bench:
	python3 tasks.py bench
lint:
	python3 tasks.py lint
