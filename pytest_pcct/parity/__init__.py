"""The engine-parity plugin of pytest-pcct: any project's k-NN engines checked against a reference.

``hooks`` (the registration hook), ``engines`` (registry, capabilities, checked handles), ``datasets``
(seeded problems), ``truth`` (every answer checked against its problem), ``assertions`` (comparisons),
``selection`` and ``session`` (one run's engines and state), ``report`` (the parity matrix), ``schema``
(telemetry JSON Schemas), ``strategies`` and ``profiles`` (Hypothesis). The pytest plugin that wires them
in is :mod:`pytest_pcct.parity_plugin`; it imports none of them (nor NumPy) until engines are selected.
"""
