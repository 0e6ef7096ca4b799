"""The `wholedoc` command line: `main` (api/cli/main.py) and one module per subcommand in api/cli/commands/.

The HTTP service (the rest of api/) never imports this package; the command line reaches it over HTTP
(api/cli/remote.py) or starts it as processes (api/cli/stack.py).
"""
