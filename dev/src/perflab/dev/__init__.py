"""Development tooling: what runs the lab on a laptop, in the tests and in the experiments.

Not part of any service: the services' wheels and images do not contain it (it lives outside
services/, in its own distribution, perflab-dev, which only the repository's virtualenv
installs).

- `perflab.dev.processes`: the four services as local processes (`make local` runs
  `python -m perflab.dev.processes up|down|status`); where they listen and what environment
  each one gets.
- `perflab.dev.infra`: reaching the real PostgreSQL, Redis and Kafka from tests (start them if
  needed) and isolating each test (own database, topic prefix, Redis key prefix).
- `perflab.dev.isolated`: one isolated copy of the whole stack, for the end-to-end tests and
  the experiments alike; it logs what its cleanup could not remove.
- `perflab.dev.profiling`: py-spy flame graphs of running local services (`make profile`,
  `make bench PROFILE=1`, the experiments' `--profile`).
- `perflab.dev.waiting`: `until`, how a test waits for a condition (a deadline, and a message
  saying what never happened) instead of sleeping.
- `perflab.dev.serving`: a gRPC server run by the shared `serve()` inside a test's process,
  for tests of its SIGTERM path.
"""
