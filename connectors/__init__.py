"""Built-in connectors, each registered as a `socialcrm.connectors` entry point."""
