import sys

from pyflow.cli import main

sys.exit(main())
