"""``python -m dmhub_adapter_tools.cli``: the command line without its console script."""

import sys

from dmhub_adapter_tools.cli import main

if __name__ == "__main__":
    sys.exit(main())
