"""pytest-pcct: engine-parity, telemetry and regression-gate testing for k-NN engines."""
