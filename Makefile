# The two commands a new user needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
JIESU := $(VENV)/bin/jiesu
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | cksum | cut -d' ' -f1)
VENDOR := jiesu/static/vendor
ASSETS := $(VENDOR)/.stamp-$(shell cat package.json package-lock.json | cksum | cut -d' ' -f1)

.PHONY: run test install assets migrate seed-demo schemas bench clean lock

run: install assets ## start the whole system on the embedded default and print where to open it
	@$(JIESU) migrate
	@$(JIESU) seed-demo
	@$(JIESU) up

# The suite spends much of its time waiting on brokers, browsers and subprocesses: three workers on two cores
# take about half the time of one. Each worker has its own PostgreSQL database (tests/conftest.py).
TEST_WORKERS ?= 3

test: install assets ## install what the tests need and run the whole suite
	$(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

install: $(STAMP)

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml constraints.txt | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[test]'
	@rm -f $(VENV)/.installed-*
	@touch $@

assets: $(ASSETS)

$(ASSETS): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@rm -rf $(VENDOR) && mkdir -p $(VENDOR)
	cp node_modules/htmx.org/dist/htmx.min.js node_modules/htmx-ext-sse/dist/sse.min.js \
	   node_modules/echarts/dist/echarts.min.js $(VENDOR)/
	@touch $@

migrate: install
	$(JIESU) migrate

seed-demo: install
	$(JIESU) seed-demo

schemas: install ## regenerate schemas/json after changing schemas/events.py
	$(JIESU) schemas export

bench: install
	$(JIESU) bench --tickets 2000

lock: install ## refresh constraints.txt from the current environment
	$(PY) -m pip freeze --exclude-editable | grep -v '^-e ' > constraints.txt

clean:
	rm -rf var $(VENDOR) node_modules
