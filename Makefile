PY ?= .venv/bin/python
# `make run PORT=4000`: the API on PORT, HTTP actions (if the app has http.py routes) on PORT+1
PORT ?= 3210

.PHONY: install run dev test test-mongo check bench

install: .venv/.installed tests/js/node_modules/.installed

.venv/.installed: pyproject.toml
	sh -e scripts/install
	touch $@

tests/js/node_modules/.installed: tests/js/package.json
	cd tests/js && npm install --no-audit --no-fund --loglevel=error
	touch $@

run: .venv/.installed
	$(PY) -m reactor serve examples/taskboard --port $(PORT)

dev: .venv/.installed
	$(PY) -m reactor dev examples/taskboard --port $(PORT)

check: .venv/.installed
	sh -e scripts/check

test: install
	sh -e scripts/test

# The MongoDB engine's suites alone: REACTOR_TEST_MONGODB_URL=mongodb://host/?replicaSet=rs0
# (a real replica set), else the mongoeco emulator.
test-mongo: install
	$(PY) -m pytest -q tests/mongo
	$(PY) scripts/test_mongo.py

bench: install
	$(PY) -m bench $(ARGS)
