from servicemap.cli import entry_point

entry_point()
