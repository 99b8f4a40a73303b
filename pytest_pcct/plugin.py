"""pytest11 entry point of pytest-pcct (options, hooks and fixtures arrive with the plugin issue)."""
