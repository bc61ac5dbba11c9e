"""The `indorch demo` command: the main job on the embedded default, followed live."""
