##@ Load tests

# Where to send the load: local (the `make local` stack), kind (the cluster), or a URL.
TARGET ?= local
# A variant of the scenario, e.g. VARIANT=ci for the short CI version.
VARIANT ?=
# Scenario variables (empty: the scenario's default), e.g. make soak DURATION=30m, make load RATE=40.
DURATION ?=
RATE ?=
# Rounds of make loadgen-accuracy (each: every level, both tools).
ROUNDS ?=
# Extra arguments of the runner, e.g. LOADTEST_ARGS="--linger 15 --progress-every 2".
LOADTEST_ARGS ?=

LOADTEST = DURATION=$(DURATION) RATE=$(RATE) $(PY) -m loadtests run --target $(TARGET) \
	$(if $(VARIANT),--variant $(VARIANT)) $(LOADTEST_ARGS)

.PHONY: loadtest-smoke load spike checkout-spike stress soak breakpoint loadtest loadtest-check loadtest-ci loadgen-accuracy

loadtest-smoke: venv ## Smoke load test: 2 users walk every journey for 30s (TARGET=local|kind|URL).
	$(LOADTEST) smoke

load: venv ## Load test: the normal busy-day arrival rate, open-loop (RATE=, DURATION=).
	$(LOADTEST) load

spike: venv ## Spike test: 10x the baseline rate within seconds, then back.
	$(LOADTEST) spike

checkout-spike: venv ## Two scenarios at once: steady browsing (RATE=, DURATION=) plus a checkout spike from 30s (SPIKE_RATE=).
	$(LOADTEST) checkout-spike

stress: venv ## Stress test: step users up until a threshold breaks; reports the breaking point.
	$(LOADTEST) stress

# Prometheus that watched the target, for the soak verdict.
PROMETHEUS_URL ?= $(if $(filter kind,$(TARGET)),http://localhost:9090,http://127.0.0.1:19090)

soak: venv ## Soak test: steady load for DURATION (default 30m), then a verdict on memory growth and latency drift per service.
	@start=$$(date +%s); status=0; $(LOADTEST) soak || status=$$?; \
	$(PY) -m loadtests.soak_verdict --prometheus $(PROMETHEUS_URL) --start $$start || status=1; \
	exit $$status

breakpoint: venv ## Breakpoint test: ramp the arrival rate until the system fails.
	$(LOADTEST) breakpoint

loadtest: venv ## Run your own scenario: make loadtest SCENARIO=loadtests/scenarios/my.yaml.
	@test -n "$(SCENARIO)" || { echo "usage: make loadtest SCENARIO=path/to/scenario.yaml"; exit 2; }
	$(LOADTEST) $(SCENARIO)

loadtest-check: venv ## Check every scenario file (and its variants) without running it.
	$(PY) -m loadtests validate loadtests/scenarios/*.yaml
	$(PY) -m loadtests validate --variant ci loadtests/scenarios/*.yaml

loadtest-ci: venv ## Short CI runs against TARGET: smoke and spike, CI variants.
	$(MAKE) loadtest-smoke spike VARIANT=ci

loadgen-accuracy: venv ## Benchmark: the runner vs vegeta at 25/50/75 % of the gateway's cached-read capacity, isolated stack (DURATION=15 s per run).
	scripts/install-vegeta.sh >/dev/null
	DURATION=$(DURATION) ROUNDS=$(ROUNDS) $(PY) -m loadtests.accuracy
