"""perflab load tests: k6-style scenarios on Locust (see README.md)."""
