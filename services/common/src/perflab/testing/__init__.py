"""Test harness shared by the services' integration tests and the end-to-end tests.

Integration tests talk to the real PostgreSQL, Redis and Kafka of `scripts/local-infra.sh`
(started on demand); each test gets its own database, topic prefix and Redis key prefix, so
tests never depend on each other or on the order they run in.
"""
