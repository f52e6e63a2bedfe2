import sys

from socialcrm.cli import main

sys.exit(main())
