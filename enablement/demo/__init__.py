"""The deterministic demo dataset: its world, asset library and deals (see dataset.generate_demo)."""
