# Thin aliases for tasks.py, which does the work with nothing but Python (also on Windows).
.PHONY: lab test release bench lint
lab:
	python3 tasks.py lab
test:
	python3 tasks.py test
release:
	python3 tasks.py release
bench:
	python3 tasks.py bench
lint:
	python3 tasks.py lint
