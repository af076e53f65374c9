"""Building the deploy units: what a function is (``functions``), the lock of the packages they
run with (``lock``, `make lock`), and each function's bundle (``bundle``, `make build`)."""
