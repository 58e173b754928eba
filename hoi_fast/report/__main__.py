"""``python -m hoi_fast.report``: runs :func:`hoi_fast.report.cli.main`."""

import sys

from hoi_fast.report.cli import main


if __name__ == "__main__":
    sys.exit(main())
